"""The lab's errors: one message each, fit to print as a single line."""

from __future__ import annotations


class LabError(RuntimeError):
    """Something the lab could not do; the message says what and, where known, why."""


class NotRootError(LabError):
    def __init__(self) -> None:
        super().__init__("the lab needs root (network namespaces), run with sudo")


class CommandError(LabError):
    """A command ran and failed (non-zero exit or timeout)."""
