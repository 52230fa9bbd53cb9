"""lasthop: keep web sites up by moving VIP routes on the last-hop router."""

__version__ = "0.1.0"
