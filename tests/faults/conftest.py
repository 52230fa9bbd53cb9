"""The fault suite: every case lands in the ledger (support.ledger), for the figures.

Each test module names its group in LEDGER_GROUP. A test that takes the `ledger` fixture is a
case; when it is torn down, the hook below closes its rows with what the test could not judge itself:
whether it raised something other than a failed assertion, and how many tracebacks its
captured output holds.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest
from support.ledger import Ledger, Tally, tracebacks

from lab import Lab

_LEDGER = pytest.StashKey[Ledger]()
_SO_FAR = pytest.StashKey[tuple[bool, bool]]()  # (passed, crashed) over setup and call


@pytest.fixture(scope="session")
def the_ledger(request: pytest.FixtureRequest) -> Ledger:
    return request.config.stash.setdefault(_LEDGER, Ledger())


@pytest.fixture
def ledger(the_ledger: Ledger, request: pytest.FixtureRequest) -> Iterator[Ledger]:
    the_ledger.begin(getattr(request.module, "LEDGER_GROUP", request.module.__name__))
    request.node.stash[_LEDGER] = the_ledger
    yield the_ledger


@pytest.fixture
def tally(ledger: Ledger, request: pytest.FixtureRequest) -> Tally:
    """A fuzz test's count of its inputs: call run() for each; its row is written when the test ends."""
    return ledger.tally(request.node.name.removeprefix("test_"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    # Rows are closed at teardown: fixtures such as a "nothing ran" check judge the case after its call.
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    ledger = item.stash.get(_LEDGER, None)
    if ledger is None:
        return
    crashed = call.excinfo is not None and not call.excinfo.errisinstance(AssertionError)
    if report.when != "teardown":
        passed, was_crashed = item.stash.get(_SO_FAR, (True, False))
        item.stash[_SO_FAR] = (passed and report.passed, was_crashed or crashed)
        return
    passed, was_crashed = item.stash.get(_SO_FAR, (False, False))
    seen = tracebacks(*(text for _, text in report.sections))
    ledger.end(passed=passed and report.passed, crashed=was_crashed or crashed, seen_tracebacks=seen,
               name=item.name)


@pytest.fixture
def web1_down(lab: Lab, lab_home: None) -> Iterator[None]:
    """web1's web server is stopped: moving www-a to web2 is the safe, wanted move."""
    lab.break_host("web1")
    try:
        yield
    finally:
        lab.heal("web1")
