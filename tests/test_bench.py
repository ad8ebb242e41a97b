"""`make bench` (benchmarks/bench.py) at tiny sizes: every row of its table has a figure.

The benchmark is not part of `make test` at full size (about 10 minutes); this smoke test
runs the same code path with a 2,000-row DE, a 5,000-row RSS run, one run per stage and
short latencies, and fails when a stage is missing from the table or has no number.
No timing is asserted: the figures themselves are the benchmark's business.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from benchmarks import processes
from tests.conftest import ROOT

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


@pytest.mark.e2e
@pytest.mark.slow
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
    account = result.stdout.split("CPU account", 1)[-1]
    for number in (3, 4, 5, 6, 7, 8, 9):  # each measured process stage has its CPU line
        assert re.search(rf"^- {number}: .* \d+\.\d s \+ sandbox \d+\.\d s CPU", account, re.M), (
            result.stdout
        )


SCHEMA = {
    "type": "SCHEMA",
    "stream": "de_Customers",
    "schema": {
        "type": "object",
        "properties": {
            "SubscriberKey": {"type": "string"},
            "Phone": {"type": ["string", "null"]},
            "LoyaltyPoints": {"type": ["integer", "null"]},
        },
    },
    "key_properties": ["SubscriberKey"],
}
RECORDS = [
    {"SubscriberKey": f"K{i}", "Phone": f"+4477009{i:05d}", "LoyaltyPoints": i} for i in range(50)
]


def write_singer_file(path: Path) -> Path:
    messages = [
        SCHEMA,
        *({"type": "RECORD", "stream": "de_Customers", "record": r} for r in RECORDS),
        {"type": "STATE", "value": {"bookmarks": {}}},
    ]
    path.write_text("".join(json.dumps(m) + "\n" for m in messages), encoding="utf-8")
    return path


def test_anchor_tap_emits_the_singer_files_records_and_schema(tmp_path: Path) -> None:
    singer = write_singer_file(tmp_path / "in.jsonl")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.anchor_tap", str(singer)],
        cwd=ROOT, capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    schemas = [m for m in messages if m["type"] == "SCHEMA"]
    assert [(m["stream"], m["key_properties"]) for m in schemas] == [
        ("de_Customers", ["SubscriberKey"])
    ]
    assert [m["record"] for m in messages if m["type"] == "RECORD"] == RECORDS
    load_only = subprocess.run(
        [sys.executable, "-m", "benchmarks.anchor_tap", str(singer), "--load-only"],
        cwd=ROOT, capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    assert load_only.stdout == b""


def test_anchor_target_reads_every_record(tmp_path: Path) -> None:
    singer = write_singer_file(tmp_path / "in.jsonl")
    with singer.open("rb") as stdin:
        result = subprocess.run(
            [sys.executable, "-m", "benchmarks.anchor_target"],
            cwd=ROOT, stdin=stdin, capture_output=True, check=True, timeout=120,
        )  # fmt: skip
    assert f"{len(RECORDS)} records".encode() in result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"bookmarks": {}}


BURN = "import time\nwhile time.process_time() < 0.3: pass"


def test_cpu_is_the_childs_including_the_children_it_waited_for(tmp_path: Path) -> None:
    # Like the target's phone worker or meltano's tap and target: a grandchild's CPU counts.
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BURN!r}], check=True)"
    measured = processes.run("child", [sys.executable, "-c", child], tmp_path)
    assert measured.cpu_seconds >= 0.3
    idle = processes.run("idle", [sys.executable, "-c", "pass"], tmp_path)
    assert idle.cpu_seconds < 0.3


def test_peak_rss_is_the_childs_own_not_the_benchmarks(tmp_path: Path) -> None:
    # wait4's ru_maxrss would report at least this process's size (Linux carries the
    # parent's high-water mark across fork and exec); VmHWM polling reports the child's.
    ballast = bytearray(300 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page: really resident
    child = "b = bytearray(80 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    measured = processes.run("child", [sys.executable, "-c", child], tmp_path)
    assert 80 <= measured.peak_rss_mb < 200
    del ballast
