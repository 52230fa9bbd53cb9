"""Whether a lock's holder is alive (bot/state/liveness.py): the /proc reading and the verdict.

Real processes where one can be had (a child that waits, one that has exited and been reaped,
a zombie); identities are built by hand for the cases no test can make happen (another node,
another boot, another pid namespace).
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from bot.state import liveness
from bot.state.liveness import ProcessIdentity, current_process, is_gone, parse_stat

# Fields 3.. of a real /proc/PID/stat line, from a Linux 6 kernel: state S, start time 98765 (field 22).
TAIL = "S 1 1234 1234 0 -1 4194560 1525 0 0 0 3 1 0 0 20 0 1 0 98765 18653184 2048 18446744073709551615"
WAITER = "import sys; sys.stdin.read()"


def stat_line(comm: str, tail: str = TAIL) -> str:
    return f"4321 ({comm}) {tail}\n"


@pytest.mark.parametrize("comm", ["python3", "a b", "a) (b", "x)", ")", "(", ") S 1 2 3"])
def test_the_start_time_is_read_after_the_last_parenthesis_whatever_the_command_name(comm: str) -> None:
    assert parse_stat(stat_line(comm)) == ("S", 98765)


@pytest.mark.parametrize("text", ["", "4321", "4321 (python3", "4321 (python3) S 1 2 3",
                                  stat_line("p", TAIL.replace("98765", "soon"))])
def test_what_is_not_a_stat_line_gives_nothing(text: str) -> None:
    assert parse_stat(text) is None


def test_this_process_is_named_by_node_pid_start_time_boot_and_pid_namespace() -> None:
    me = current_process()
    assert (me.node, me.pid) == (socket.gethostname(), os.getpid())
    with open("/proc/sys/kernel/random/boot_id") as f:
        assert me.boot_id == f.read().strip()
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", me.boot_id)
    assert me.pid_ns == os.readlink("/proc/self/ns/pid") and me.pid_ns.startswith("pid:[")
    assert me.started > 0
    assert current_process() == me  # read again: the same process
    assert str(me) == f"{me.node}:{me.pid}"
    assert str(dataclasses.replace(me, node="")) == ""  # a row of an older lasthop names nobody


def test_an_identity_survives_its_row() -> None:
    me = current_process()
    assert ProcessIdentity.of_row(me.columns()) == me  # type: ignore[arg-type]


@pytest.fixture
def waiter() -> Iterator[subprocess.Popen[str]]:
    """A live child process, until its stdin closes."""
    child = subprocess.Popen([sys.executable, "-c", WAITER], stdin=subprocess.PIPE, text=True)
    yield child
    if child.poll() is None:
        child.kill()
    child.wait()


def identity_of(pid: int) -> ProcessIdentity:
    stat = liveness._stat(pid)
    assert stat is not None, f"/proc does not show {pid}"
    return dataclasses.replace(current_process(), pid=pid, started=stat[1])


def test_a_live_process_is_alive_and_stops_being_so_when_it_ends(waiter: subprocess.Popen[str]) -> None:
    child = identity_of(waiter.pid)
    assert child.started >= current_process().started  # it started after us
    assert not is_gone(child)
    assert waiter.stdin is not None
    waiter.stdin.close()
    waiter.wait(timeout=60)  # exited and reaped: no process has that pid now
    assert is_gone(child)


def test_this_process_is_alive() -> None:
    assert not is_gone(current_process())


def test_a_recycled_pid_is_not_the_holder(waiter: subprocess.Popen[str]) -> None:
    child = identity_of(waiter.pid)
    # The pid runs, but it started at another time: another process that was given the same pid.
    assert is_gone(dataclasses.replace(child, started=child.started - 1))
    assert is_gone(dataclasses.replace(child, started=child.started + 1))
    assert not is_gone(child)


def test_a_live_pid_without_a_recorded_start_time_counts_as_alive(waiter: subprocess.Popen[str]) -> None:
    unknown = dataclasses.replace(identity_of(waiter.pid), started=0)
    assert not is_gone(unknown)  # it may or may not be the holder: the TTL decides
    assert waiter.stdin is not None
    waiter.stdin.close()
    waiter.wait(timeout=60)
    assert is_gone(unknown)  # but no process at all with that pid is certain


def test_the_command_name_cannot_shift_the_fields() -> None:
    odd = "import sys; open('/proc/self/comm', 'w').write('a) (b c 9'); print('named', flush=True); sys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", odd], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "named\n"
        with open(f"/proc/{child.pid}/comm") as f:
            assert f.read().strip() == "a) (b c 9"
        stat = liveness._stat(child.pid)
        assert stat is not None and stat[0] in ("S", "R")
        assert stat[1] >= current_process().started
        assert not is_gone(identity_of(child.pid))
    finally:
        child.kill()
        child.wait()


def test_a_zombie_holds_nothing() -> None:
    child = subprocess.Popen([sys.executable, "-c", "print('started', flush=True)"], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "started\n"
        holder = identity_of(child.pid)  # read while it runs (or already a zombie: same start time)
        state = ""
        for _ in range(3000):  # it exits on its own; not reaped, it stays a zombie
            stat = liveness._stat(child.pid)
            state = stat[0] if stat else "gone"
            if state == "Z":
                break
            time.sleep(0.01)
        assert state == "Z"
        assert is_gone(holder)
    finally:
        child.wait()


def test_a_holder_on_another_node_is_never_judged_by_its_pid() -> None:
    me = current_process()
    dead_pid = _reaped_pid()
    elsewhere = dataclasses.replace(me, node=me.node + "-other", pid=dead_pid)
    assert not is_gone(elsewhere)
    assert not is_gone(dataclasses.replace(elsewhere, boot_id="another boot"))  # its own reboot, not ours
    assert not is_gone(dataclasses.replace(elsewhere, started=me.started + 1))


def test_a_reboot_of_this_node_ends_every_holder_of_the_boot_before() -> None:
    me = current_process()
    assert is_gone(dataclasses.replace(me, boot_id="0" * 8 + me.boot_id[8:]))  # even our own pid


def test_what_cannot_be_told_counts_as_alive() -> None:
    me = current_process()
    dead = dataclasses.replace(me, pid=_reaped_pid())
    assert is_gone(dead)  # the baseline: this one is certainly dead
    assert not is_gone(dataclasses.replace(dead, node=""))  # a row of an older lasthop
    assert not is_gone(dataclasses.replace(dead, boot_id=""))
    assert not is_gone(dead, dataclasses.replace(me, boot_id=""))  # we cannot read our own boot id
    assert not is_gone(dataclasses.replace(dead, pid_ns=""))
    assert not is_gone(dataclasses.replace(dead, pid_ns="pid:[1]"))  # pids of another namespace
    assert not is_gone(dataclasses.replace(dead, pid=0))


def test_a_pid_hidden_from_proc_but_signalable_is_alive(monkeypatch: pytest.MonkeyPatch,
                                                         waiter: subprocess.Popen[str]) -> None:
    child = identity_of(waiter.pid)
    dead = dataclasses.replace(child, pid=_reaped_pid())
    monkeypatch.setattr(liveness, "_stat", lambda pid: None)  # what hidepid=2 shows of others' processes
    assert not is_gone(child)  # kill(pid, 0) still finds it
    assert is_gone(dead)


def _reaped_pid() -> int:
    """A pid that no process has now: a child that has exited and been waited for."""
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid
