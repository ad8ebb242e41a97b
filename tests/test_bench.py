"""`make bench` (benchmarks/bench.py) at tiny sizes: every row of its table has a figure.

The benchmark is not part of `make test` at full size (about 10 minutes); this smoke test
runs the same code path with a 2,000-row DE, a 5,000-row RSS run, one run per stage and
short latencies, and fails when a stage is missing from the table or has no number.
No timing is asserted: the figures themselves are the benchmark's business.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Row number -> lines it has: 10 = rowset requests of a first and a quiet run + upserts,
# 12 = peak RSS of the tap and of the target.
EXPECTED_ROWS = {**dict.fromkeys(range(1, 13), 1), 10: 3, 12: 2}
TINY = ["--rows", "2000", "--big-rows", "5000", "--repeat", "1"]
SHORT_LATENCY = ["--rowset-latency", "0.1", "--upsert-latency", "0.05"]
NUMBER = re.compile(r"\d")


def table_rows(output: str) -> list[list[str]]:
    """The cells of each data row of the table the benchmark printed."""
    rows = []
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].isdigit():
            rows.append(cells)
    return rows


def test_bench_table_has_every_row_with_a_number() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench", *TINY, *SHORT_LATENCY],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-6000:]
    rows = table_rows(result.stdout)
    assert Counter(int(cells[0]) for cells in rows) == EXPECTED_ROWS, result.stdout
    no_number = [cells for cells in rows if not NUMBER.search(cells[2])]
    assert not no_number, f"rows without a measured number: {no_number}"
    assert all(cells[-1] in {"met", "NOT MET", "-"} for cells in rows), result.stdout
    assert "machine: " in result.stdout
    assert "cores" in result.stdout
