"""Shared fixtures. Tests never skip: a missing tool is installed by scripts/test,
and a skipped test fails the run (see pytest_sessionfinish)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The module's package is imported as the engine would: the main object is named
# by the dagger.json name, and `dagger` must know it before it is imported.
os.environ.setdefault("DAGGER_MAIN_OBJECT", "OpenfgaRelease")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.support, benchmarks

import pytest  # noqa: E402


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and exitstatus == 0:
        reporter.write_line(
            f"{len(skipped)} test(s) skipped: this project runs every tier, so that is a failure",
            red=True,
        )
        session.exitstatus = 1


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
