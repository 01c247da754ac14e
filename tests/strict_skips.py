"""A pytest hook that turns "skipped: fixture missing" into a failure.

Every fixture and data file the suite reads lives in the repository (tests/fixtures/), so one that is
missing means a broken checkout or a test looking outside the repository, never a reason to pass quietly:
a green run with half the suite skipped is how 25 GitHub tests once went untested in a plain clone.
Platform skips ("/proc is Linux", "root can write anywhere") stay skips.

Registered by tests/conftest.py (which imports the hooks); `-p strict_skips` loads it on its own.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any

import pytest

#: A skip reason that names test data ...
_DATA = re.compile(r"fixture|payload|test data|data file|webhook", re.IGNORECASE)
#: ... and says it is not there.
_ABSENT = re.compile(
    r"not found|missing|no such file|does not exist|doesn't exist|not present|absent|unavailable|cannot find"
    r"|could not find|couldn't find",
    re.IGNORECASE,
)


def is_missing_fixture(reason: str) -> bool:
    """True when a skip reason says a fixture or data file is missing."""
    return bool(_DATA.search(reason) and _ABSENT.search(reason))


def _fail(reason: str) -> str:
    return (
        f"{reason}\n[strict_skips] a test may not skip for a missing fixture: fixtures live in the repository "
        "(tests/fixtures/), so this is a broken checkout or a test reading outside the repo"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail") or not isinstance(report.longrepr, tuple):
        return
    reason = str(report.longrepr[2])
    if is_missing_fixture(reason):
        report.outcome = "failed"
        report.longrepr = _fail(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    """The same for a whole module skipped at import (`pytest.skip(..., allow_module_level=True)`)."""
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if report.skipped and isinstance(report.longrepr, tuple) and is_missing_fixture(str(report.longrepr[2])):
        report.outcome = "failed"
        report.longrepr = _fail(str(report.longrepr[2]))
