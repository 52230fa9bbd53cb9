"""Health: check kinds, the per-target state machine, and (later) scheduling."""
