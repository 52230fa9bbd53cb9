"""The watchdog cuts a call whose deadline passed, and only that call."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from bot.drivers.deadline import Watchdog, deadline, shut

pytestmark = pytest.mark.timeout(30)


def test_a_passed_deadline_runs_the_cut_and_marks_the_ticket() -> None:
    dog = Watchdog()
    cut = threading.Event()
    ticket = dog.arm(0.05, cut.set)
    assert cut.wait(10)
    assert ticket.expired


def test_a_cancelled_deadline_never_cuts() -> None:
    dog = Watchdog()
    first, second = threading.Event(), threading.Event()
    ticket = dog.arm(0.05, first.set)
    dog.cancel(ticket)
    # The later deadline firing proves the watchdog went past the cancelled one's time.
    dog.arm(0.1, second.set)
    assert second.wait(10)
    assert not first.is_set()
    assert not ticket.expired
    assert dog.pending == 0


def test_deadlines_fire_in_order_of_their_time_not_of_arming() -> None:
    dog = Watchdog()
    fired: list[str] = []
    done = threading.Event()
    dog.arm(0.2, lambda: (fired.append("late"), done.set()))
    dog.arm(0.05, lambda: fired.append("early"))
    assert done.wait(10)
    assert fired == ["early", "late"]


def test_a_failing_cut_does_not_stop_the_others() -> None:
    dog = Watchdog()
    later = threading.Event()

    def boom() -> None:
        raise RuntimeError("cut failed")

    dog.arm(0.01, boom)
    dog.arm(0.05, later.set)
    assert later.wait(10)


def test_the_watchdog_thread_ends_when_nothing_is_pending() -> None:
    dog = Watchdog(idle_exit=0.05)
    fired = threading.Event()
    dog.arm(0.01, fired.set)
    assert dog.running
    assert fired.wait(10)
    for _ in range(500):  # bounded: 5 s at most
        if not dog.running:
            break
        time.sleep(0.01)
    assert not dog.running
    # ... and a new deadline starts it again.
    again = threading.Event()
    dog.arm(0.01, again.set)
    assert again.wait(10)


def test_the_block_is_left_with_nothing_pending() -> None:
    dog = Watchdog()
    with deadline(30, lambda: None, dog) as ticket:
        assert dog.pending == 1
        assert 0 < ticket.remaining() <= 30
    assert dog.pending == 0
    assert not ticket.expired


def test_shutting_the_socket_wakes_a_blocked_recv() -> None:
    a, b = socket.socketpair()
    try:
        with deadline(0.1, lambda: shut(a)) as ticket:
            data = a.recv(1)  # b never writes: only the cut ends this
        assert data == b""
        assert ticket.expired
    finally:
        b.close()
