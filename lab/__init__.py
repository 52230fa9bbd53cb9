"""A real copy of the lasthop network in network namespaces, for tests and demos.

Same VIPs on the loopback of three web hosts; a router (FRR, r1) and a plain
Linux router (r2) with one static route per VIP prefix towards one host; a
client behind both. See `Lab` for the operations and `LabPlan` for the layout.
"""

from lab.errors import CommandError, LabError, NotRootError
from lab.lab import Lab
from lab.plan import Device, Host, LabPlan, PlanError, Service
from lab.probe import ClientGetError
from lab.status import DeviceStatus, LabStatus, ServiceStatus

__all__ = [
    "ClientGetError",
    "CommandError",
    "Device",
    "DeviceStatus",
    "Host",
    "Lab",
    "LabError",
    "LabPlan",
    "LabStatus",
    "NotRootError",
    "PlanError",
    "Service",
    "ServiceStatus",
]
