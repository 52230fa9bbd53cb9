"""Pure logic of the driver interface: move validation and FIB polling."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from bot.drivers.base import (
    ConfigBlock,
    DeviceSpec,
    ExecLine,
    FibReading,
    RevertSupport,
    RouteMove,
    RouterDriver,
    StaticRoute,
    Step,
    Transcript,
    WaitFib,
    lines_of,
)
from bot.drivers.errors import DriverError, VerifyTimeout

P = IPv4Network("198.51.100.32/27")
WEB1, WEB2 = IPv4Address("192.0.2.2"), IPv4Address("192.0.2.3")
SPEC = DeviceSpec(name="r1", address="198.18.7.11", username="ops", known_hosts=Path("/nonexistent"))


class ScriptedDriver(RouterDriver):
    """FIB answers come from a script, one per poll; the last repeats. Sends nothing anywhere."""

    kind = "scripted"

    def __init__(self, answers: list[set[IPv4Address]], **kw: int) -> None:
        super().__init__(SPEC, **kw)  # type: ignore[arg-type]
        self.answers = answers
        self.polls = 0
        self.sent: list[str] = []

    @classmethod
    def _steps(cls, adds: Sequence[tuple[IPv4Network, IPv4Address]],
               removes: Sequence[tuple[IPv4Network, IPv4Address]],
               waits: Sequence[tuple[IPv4Network, IPv4Address]], revert_seconds: int | None) -> list[Step]:
        return [ExecLine(f"add {p} {h}") for p, h in adds] + [ExecLine(f"del {p} {h}") for p, h in removes]

    def get_static_routes(self) -> list[StaticRoute]:
        return []

    def fib_next_hops(self, prefix: IPv4Network) -> set[IPv4Address]:
        answer = self.answers[min(self.polls, len(self.answers) - 1)]
        self.polls += 1
        return answer

    def _send(self, step: ConfigBlock | ExecLine, transcript: Transcript) -> None:
        self.sent += lines_of([step])

    def close(self) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_route_move_refuses_strings_so_no_text_reaches_a_command() -> None:
    with pytest.raises(TypeError):
        RouteMove(P, WEB1, "192.0.2.3; reload")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        RouteMove("198.51.100.32/27", WEB1, WEB2)  # type: ignore[arg-type]


def test_reversed_move_swaps_next_hops_and_refuses_a_fresh_route() -> None:
    assert RouteMove(P, WEB1, WEB2).reversed() == RouteMove(P, WEB2, WEB1)
    with pytest.raises(ValueError):
        RouteMove(P, None, WEB2).reversed()


def test_wait_for_fib_returns_once_the_fib_shows_the_new_hop() -> None:
    clock = FakeClock()
    d = ScriptedDriver([{WEB1}, {WEB1}, {WEB2}])
    assert d.wait_for_fib(P, WEB2, timeout=5, interval=0.1, clock=clock, sleep=clock.sleep) == {WEB2}
    assert d.polls == 3


def test_wait_for_fib_exact_does_not_accept_ecmp_but_subset_does() -> None:
    clock = FakeClock()
    d = ScriptedDriver([{WEB1, WEB2}])
    assert d.wait_for_fib(P, WEB2, exact=False, clock=clock, sleep=clock.sleep) == {WEB1, WEB2}
    with pytest.raises(VerifyTimeout, match=r"r1: 198\.51\.100\.32/27 still points at 192\.0\.2\.2, 192\.0\.2\.3"):
        d.wait_for_fib(P, WEB2, timeout=1, clock=clock, sleep=clock.sleep)


def test_wait_for_fib_times_out_naming_prefix_and_expectation() -> None:
    clock = FakeClock()
    d = ScriptedDriver([set()])
    with pytest.raises(VerifyTimeout, match=r"no route after 2s \(expected 192\.0\.2\.3\)"):
        d.wait_for_fib(P, WEB2, timeout=2, interval=0.5, clock=clock, sleep=clock.sleep)
    assert clock.now >= 2


class ResolvedDriver(ScriptedDriver):
    """Overrides only the reading hook, as Junos does: its make-before-break wait reads a
    second script (what resolves), never the FIB; the exact wait is the base's."""

    def __init__(self, fib: list[set[IPv4Address]], resolved: set[IPv4Address]) -> None:
        super().__init__(fib)
        self.resolved = resolved
        self.reads = 0

    def _fib_reading(self, prefix: IPv4Network, exact: bool) -> FibReading:
        if exact:
            return super()._fib_reading(prefix, exact)
        self.reads += 1
        return FibReading(set(self.resolved), "{prefix} resolves {have} after {timeout:g}s, not {want}")


def test_a_driver_overriding_only_the_reading_hook_waits_on_what_it_reads() -> None:
    clock = FakeClock()
    d = ResolvedDriver([{WEB1}], resolved={WEB1, WEB2})
    assert d.wait_for_fib(P, WEB2, exact=False, clock=clock, sleep=clock.sleep) == {WEB1, WEB2}
    assert (d.reads, d.polls) == (1, 0)  # the FIB alone would never have shown WEB2


def test_a_driver_overriding_only_the_reading_hook_times_out_as_the_base_does() -> None:
    base_clock, hook_clock = FakeClock(), FakeClock()
    base, hooked = ScriptedDriver([{WEB1}]), ResolvedDriver([{WEB1}], resolved={WEB1})
    with pytest.raises(VerifyTimeout, match=r"still points at 192\.0\.2\.2 after 2s \(expected 192\.0\.2\.3\)"):
        base.wait_for_fib(P, WEB2, timeout=2, interval=0.5, exact=False, clock=base_clock, sleep=base_clock.sleep)
    with pytest.raises(VerifyTimeout) as e:
        hooked.wait_for_fib(P, WEB2, timeout=2, interval=0.5, exact=False, clock=hook_clock, sleep=hook_clock.sleep)
    assert str(e.value) == "r1: 198.51.100.32/27 resolves 192.0.2.2 after 2s, not 192.0.2.3"
    # The same loop: as many reads, and the same time waited, before giving up.
    assert (hooked.reads, hook_clock.now) == (base.polls, base_clock.now) == (5, 2.0)
    assert hooked.polls == 0
    with pytest.raises(VerifyTimeout, match="still points at"):  # the exact wait is still the base's
        hooked.wait_for_fib(P, WEB2, timeout=0, clock=hook_clock, sleep=hook_clock.sleep)
    assert hooked.polls == 1


def test_load_rejects_duplicate_prefixes_and_a_driver_without_revert_refuses_a_delay() -> None:
    d = ScriptedDriver([set()])
    with pytest.raises(ValueError, match="twice"):
        d.load([RouteMove(P, WEB1, WEB2), RouteMove(P, WEB2, WEB1)])
    with pytest.raises(TypeError):
        d.load(["198.51.100.32/27 192.0.2.3"])  # type: ignore[list-item]
    with pytest.raises(DriverError, match="no device-side revert"):
        ScriptedDriver([set()], revert_seconds=300)
    assert d.sent == []


def test_revert_support_says_what_the_device_takes() -> None:
    minutes = RevertSupport(60, 7200, step_seconds=60)
    assert minutes.problem(300) is None
    assert minutes.problem(90) == "must be a whole number of minutes from 1m to 120m"
    assert minutes.problem(7260) == "must be a whole number of minutes from 1m to 120m"
    assert RevertSupport(1, 86400).problem(0) == "must be a whole number of seconds from 1s to 86400s"


def test_lines_of_is_every_sent_line_in_order_and_never_a_wait() -> None:
    steps = [ConfigBlock("configure terminal", ("ip route a b",)), WaitFib(((P, frozenset({WEB2})),)),
             ExecLine("write memory")]
    assert lines_of(steps) == ["configure terminal", "ip route a b", "end", "write memory"]


def test_device_spec_repr_hides_the_password() -> None:
    spec = DeviceSpec("r9", "198.18.7.19", "ops", Path("kh"), password="s3cret-Pa55")
    assert "s3cret-Pa55" not in repr(spec)


Q = IPv4Network("198.51.100.64/27")


class TableScriptDriver(ScriptedDriver):
    """A FIB script per prefix, each advanced when that prefix is read; every many-prefix read logged."""

    def __init__(self, scripts: dict[IPv4Network, list[set[IPv4Address]]]) -> None:
        super().__init__([set()])
        self.scripts = scripts
        self.reads: dict[IPv4Network, int] = dict.fromkeys(scripts, 0)
        self.many: list[list[IPv4Network]] = []

    def fib_next_hops_many(self, prefixes: Sequence[IPv4Network]) -> dict[IPv4Network, set[IPv4Address]]:
        self.many.append(list(prefixes))
        out = {}
        for p in prefixes:
            script = self.scripts[p]
            out[p] = script[min(self.reads[p], len(script) - 1)]
            self.reads[p] += 1
        return out


def test_waiting_together_reads_all_pending_prefixes_at_once_until_each_is_as_wanted() -> None:
    clock = FakeClock()
    d = TableScriptDriver({P: [{WEB1}, {WEB2}], Q: [{WEB1}, {WEB1}, {WEB2}]})
    d._wait_together({P: WEB2, Q: {WEB2}}, timeout=5, clock=clock, sleep=clock.sleep)
    assert d.many == [[P, Q], [P, Q], [Q]]  # one read per poll; a prefix once seen is not read again


def test_waiting_together_is_one_deadline_for_all_and_names_the_prefix_still_wrong() -> None:
    clock = FakeClock()
    d = TableScriptDriver({P: [{WEB2}], Q: [set()]})
    with pytest.raises(VerifyTimeout, match=r"^r1: 198\.51\.100\.64/27 still points at no route after 2s "
                                            r"\(expected 192\.0\.2\.3\)$"):
        d._wait_together({P: WEB2, Q: WEB2}, timeout=2, interval=0.5, clock=clock, sleep=clock.sleep)
    assert clock.now == 2.0  # not 2 s per prefix


def test_waiting_together_keeps_exact_and_subset_apart() -> None:
    clock = FakeClock()
    d = TableScriptDriver({P: [{WEB1, WEB2}]})
    d._wait_together({P: WEB2}, exact=False, clock=clock, sleep=clock.sleep)  # make-before-break: both live
    with pytest.raises(VerifyTimeout, match=r"still points at 192\.0\.2\.2, 192\.0\.2\.3"):
        d._wait_together({P: WEB2}, timeout=1, clock=clock, sleep=clock.sleep)


def test_a_kind_that_reads_one_prefix_at_a_time_waits_for_each_in_turn() -> None:
    # The base wait_for_fibs: wait_for_fib per prefix, so a kind's own reading hook still applies.
    d = ResolvedDriver([{WEB1}], resolved={WEB1, WEB2})
    d.wait_for_fibs({P: WEB2, Q: WEB2}, exact=False, timeout=0)
    assert (d.reads, d.polls) == (2, 0)


def test_waiting_together_polls_soon_then_backs_off_to_the_interval_and_last_at_the_deadline() -> None:
    clock, pauses = FakeClock(), []

    def sleep(seconds: float) -> None:
        pauses.append(round(seconds, 6))
        clock.sleep(seconds)

    d = TableScriptDriver({P: [set()]})
    with pytest.raises(VerifyTimeout):
        d._wait_together({P: WEB2}, timeout=0.5, interval=0.1, clock=clock, sleep=sleep)
    assert pauses[:6] == [0.005, 0.01, 0.02, 0.04, 0.08, 0.1]
    assert max(pauses) == 0.1 and clock.now == pytest.approx(0.5)
    assert d.reads[P] == len(pauses) + 1  # a read before each pause, and one at the deadline
