"""`make demo` keeps working: the script a new user runs first, run for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def test_demo_runs_twice_and_the_second_run_sends_only_changes(tmp_path: Path) -> None:
    env = {**os.environ, "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}"}
    result = subprocess.run(
        [sys.executable, "scripts/demo.py"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Run 1: meltano run tap-sfmc-de target-insider-one" in out
    assert "records received:        5000" in out
    assert "changed rows: 25 -> users sent:" in out
    assert "records received:        25" in out  # run 2 read only the changes
    assert '"replication_key":"ModifiedDate"' in out
