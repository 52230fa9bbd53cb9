"""The failover engine: plan, risk, pre-check, apply, verify, roll back, save, audit."""
