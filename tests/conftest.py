"""Suite-wide set-up: the directory pytest-xdist workers share for built-once test fixtures.

The controller process (or a run without xdist) clears its shared directory before the workers start,
so a directory left by a killed run whose process id was reused is never taken for this run's, and
removes it when the run ends (tests/support/penguin_transform.py builds into it).
"""
from __future__ import annotations

import os
import shutil

from tests.support.penguin_transform import xdist_shared_root


def _is_controller() -> bool:
    return "PYTEST_XDIST_WORKER" not in os.environ


def pytest_configure(config) -> None:
    if _is_controller():
        shutil.rmtree(xdist_shared_root(os.getpid()), ignore_errors=True)


def pytest_unconfigure(config) -> None:
    if _is_controller():
        shutil.rmtree(xdist_shared_root(os.getpid()), ignore_errors=True)
