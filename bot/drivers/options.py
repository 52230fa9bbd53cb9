"""What a router entry in the inventory may say beyond how to log in: each driver's own options.

Each driver class names its options model (`RouterDriver.options`); the registry joins them
into one pydantic union discriminated on `driver`, so `revert_timer` exists only on the
drivers that have a device-side revert, and a new vendor's options arrive with its file.
The checks ask the driver class itself (its `saves` and `revert_support`), so no rule is
written twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationInfo, field_validator, model_validator

from bot.values import Duration, FrozenModel, fail

if TYPE_CHECKING:
    from bot.drivers.base import RouterDriver


def _driver(kind: object) -> type[RouterDriver] | None:
    return _kinds().get(kind) if isinstance(kind, str) else None


class DriverOptions(FrozenModel):
    """The options every router has. `save_config` unset follows the driver: a router that can save, saves."""

    driver: str
    save_config: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _options_of_other_drivers(cls, data: Any) -> Any:
        # "unknown key" would be true but unhelpful for a key that another kind of router takes.
        if isinstance(data, dict):
            for key in data:
                if isinstance(key, str) and key not in cls.model_fields:
                    able = [k for k, d in _kinds().items() if key in d.options.model_fields]
                    if able:
                        raise fail(f"{key} is only for {', '.join(able)} routers, not {data.get('driver')}",
                                   at=(key,))
        return data

    @field_validator("save_config")
    @classmethod
    def _something_to_save(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        kind = info.data.get("driver")
        driver = _driver(kind)
        if value and driver is not None and not driver.saves:
            raise fail(f"a {kind} router has no configuration to save: set save_config: false")
        return value

    @property
    def saves(self) -> bool:
        if self.save_config is not None:
            return self.save_config
        driver = _driver(self.driver)
        return driver is not None and driver.saves

    @property
    def revert_seconds(self) -> int | None:
        """The device-side revert delay lasthop arms with each change; None when the router has none."""
        return None


class RevertOptions(DriverOptions):
    """Options of a router that can undo an unconfirmed change by itself (commit confirmed, a revert timer)."""

    revert_timer: Duration | None = None

    @field_validator("revert_timer")
    @classmethod
    def _within_the_devices_range(cls, value: float | None, info: ValidationInfo) -> float | None:
        driver = _driver(info.data.get("driver"))
        support = driver.revert_support if driver is not None else None
        if value is not None and support is not None and (problem := support.problem(value)):
            raise fail(problem)
        return value

    @property
    def revert_seconds(self) -> int | None:
        return int(self.revert_timer) if self.revert_timer is not None else None


def _kinds() -> dict[str, type[RouterDriver]]:
    from bot.drivers import registry  # the registry imports every driver module, and they import this one

    return registry()
