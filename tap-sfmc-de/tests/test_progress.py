"""Progress lines during a long run: rows and requests against the budget, counts only."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import pytest
from tap_sfmc_de.progress import ProgressLog
from tap_sfmc_de_testkit import run_tap

if TYPE_CHECKING:
    from pathlib import Path

    from api_sandbox.testing import SandboxProcess


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_logs_at_most_once_per_interval_with_running_totals(caplog) -> None:
    caplog.set_level(logging.INFO)
    clock = FakeClock()
    progress = ProgressLog(logging.getLogger("t"), "de_customers", 50, interval=5, clock=clock)
    progress.note(2500, 2)  # at once: nothing yet
    clock.now += 4.9
    progress.note(2500, 3)
    assert caplog.messages == []
    clock.now += 0.2
    progress.note(2500, 4)
    clock.now += 1
    progress.note(2500, 5)  # within the next interval: quiet
    clock.now += 5
    progress.note(0, 6)
    line = (
        "de_customers: progress: {} rows emitted, {} of 50 rowset requests (max_pages_per_run) used"
    )
    assert caplog.messages == [line.format(7500, 4), line.format(10000, 6)]


@pytest.mark.e2e
def test_a_slow_run_logs_progress_without_row_values(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    # Each rowset response takes 2 s, so a run of 4 pages passes the 5-second interval.
    sandbox.add_faults(
        {"endpoint": "rowset", "action": "delay", "delay_seconds": 2.0, "times": None}
    )
    config = sandbox.tap_config(page_size=1500, filter_support="client")
    run = run_tap(config, tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if ": progress: " in line]
    assert lines, run.stderr[-3000:]
    pattern = r".*de_customers: progress: \d+ rows emitted, \d+ of 50 rowset requests .*"
    assert all(re.fullmatch(pattern, line) for line in lines), lines
    emails = {r["EmailAddress"] for r in run.records if r.get("EmailAddress")}
    assert not any(email in run.stderr for email in emails)
