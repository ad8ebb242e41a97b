"""End-to-end: ``tap-sfmc-de --preflight`` against the sandbox, each check green and red."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tap_sfmc_de_testkit import TAP_BIN, rowset_requests, run_tap

pytestmark = pytest.mark.e2e

EXIT_OK, EXIT_FAIL, EXIT_WARN_ONLY = 0, 1, 10
STATE = {"bookmarks": {"de_customers": {"replication_key_value": "2020-01-01T00:00:00+00:00"}}}


@dataclass
class Report:
    """What one ``--preflight`` process printed."""

    returncode: int
    stdout: str
    stderr: str

    def line(self, subject: str) -> str:
        """The check's text: its first line and the wrapped lines under it."""
        lines = self.stdout.splitlines()
        start = next(i for i, text in enumerate(lines) if text.startswith(subject + " "))
        block = [lines[start]]
        for text in lines[start + 1 :]:
            if not text.startswith(" "):
                break
            block.append(text.strip())
        return " ".join(block)

    def grade(self, subject: str) -> str:
        return self.line(subject)[len(subject) :].split()[0]


def preflight(config: dict[str, Any], workdir: Path) -> Report:
    """Run ``--preflight`` with a state file next to it; assert nothing was written."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    state_path = workdir / "state.json"
    state_path.write_text(json.dumps(STATE), encoding="utf-8")
    before = {p.name: p.read_bytes() for p in workdir.iterdir()}
    proc = subprocess.run(
        [TAP_BIN, "--config", str(config_path), "--state", str(state_path), "--preflight"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=workdir,
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    # No Singer message (no STATE), and no file created or changed.
    assert not [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert {p.name: p.read_bytes() for p in workdir.iterdir()} == before
    return Report(proc.returncode, proc.stdout, proc.stderr)


def test_a_sound_setup_is_all_ok_and_predicts_the_request_cost(sandbox, tmp_path):
    sandbox.create_de("Small", size=120, seed=3)
    config = sandbox.tap_config(data_extension_keys=["Small"], page_size=25)
    sandbox.reset_counters()
    report = preflight(config, tmp_path / "preflight")
    assert report.returncode == EXIT_OK, report.stdout + report.stderr[-2000:]
    for subject in ("token", "scopes", "Small: key", "Small: fields", "Small: rows"):
        assert report.grade(subject) == "OK", report.stdout
    assert "120 rows" in report.line("Small: rows")
    assert "primary key SubscriberKey" in report.line("Small: fields")
    assert "read in sfmc_timezone_offset (UTC-06:00)" in report.line("Small: $filter dates")
    assert "$orderBy SubscriberKey asc is honoured" in report.line("Small: row order")
    assert "0 WARN, 0 FAIL -> exit 0" in report.stdout
    assert rowset_requests(sandbox) <= 5  # a count probe, one literal probe, a 10-row sample
    assert len(report.stdout.splitlines()) <= 25  # one screen

    # The predicted costs are what real runs then cost (measured by the sandbox).
    cost = report.line("Small: mode and cost")
    assert "incremental, server-side windows" in cost
    sandbox.reset_counters()
    first = run_tap(config, tmp_path / "first")
    assert first.returncode == 0, first.stderr[-2000:]
    # The prediction counts the next window's empty page; a run that ends within the
    # server clock's second of its window does not open one.
    predicted = int(re.search(r"full first run ≈ (\d+) rowset requests", cost).group(1))
    assert predicted - 1 <= rowset_requests(sandbox) <= predicted
    sandbox.reset_counters()
    quiet = run_tap(config, tmp_path / "quiet", state=first.state)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert f"a quiet run ≈ {rowset_requests(sandbox)}" in cost


@pytest.mark.parametrize(
    ("switches", "settings", "mode"),
    [
        ({"filter_mode": "ignored"}, {}, "incremental, client-side filtering"),
        ({}, {"fetch_mode": "full"}, "full, every row on every run"),
    ],
)
def test_client_and_full_mode_costs_are_predicted_too(sandbox, tmp_path, switches, settings, mode):
    sandbox.create_de("Small", size=120, seed=3)
    if switches:
        sandbox.configure(**switches)
    config = sandbox.tap_config(data_extension_keys=["Small"], page_size=25, **settings)
    report = preflight(config, tmp_path / "preflight")
    cost = report.line("Small: mode and cost")
    assert mode in cost
    sandbox.reset_counters()
    first = run_tap(config, tmp_path / "first")
    assert f"full first run ≈ {rowset_requests(sandbox)} rowset requests" in cost
    sandbox.reset_counters()
    run_tap(config, tmp_path / "quiet", state=first.state)
    assert f"a quiet run ≈ {rowset_requests(sandbox)}" in cost


def test_missing_scope_fails_with_where_to_enable_it(sandbox, tmp_path):
    sandbox.configure(granted_scopes=["offline", "list_and_subscribers_read"])
    report = preflight(sandbox.tap_config(), tmp_path)
    assert report.returncode == EXIT_FAIL
    assert report.grade("scopes") == "FAIL"
    line = report.line("scopes")
    assert "data_extensions_read is missing" in line
    assert "Installed Packages" in line
    assert "fix:" in line


def test_a_de_name_instead_of_its_key_is_named(sandbox, tmp_path):
    sandbox.create_de("cust_export_01", name="Customers Export", size=10)
    config = sandbox.tap_config(data_extension_keys=["Customers Export", "NoSuchDE"])
    report = preflight(config, tmp_path)
    assert report.returncode == EXIT_FAIL
    named = report.line("Customers Export: key")
    assert report.grade("Customers Export: key") == "FAIL"
    assert "is the Name of a DE, not its external key" in named
    assert "External Key" in named
    missing = report.line("NoSuchDE: key")
    assert "no DE has the external key (or name) 'NoSuchDE'" in missing
    assert "account_id" in missing


def test_no_replication_key_fails_with_the_fix(sandbox, tmp_path):
    sandbox.create_de(
        "NoModified",
        fields=[{"name": "Id", "is_primary_key": True}, {"name": "Note"}],
        size=10,
    )
    report = preflight(sandbox.tap_config(data_extension_keys=["NoModified"]), tmp_path)
    assert report.returncode == EXIT_FAIL
    assert report.grade("NoModified: replication key") == "FAIL"
    line = report.line("NoModified: replication key")
    assert "has no field 'ModifiedDate'" in line
    assert "replication_keys_by_de" in line
    assert "fetch_mode full" in line


def test_a_replication_key_that_is_not_a_date_fails(sandbox, tmp_path):
    config = sandbox.tap_config(replication_key="City")
    report = preflight(config, tmp_path)
    assert report.grade("Customers: replication key") == "FAIL"
    assert "is Text, not Date" in report.line("Customers: replication key")


def test_filter_ignored_is_a_warning_and_fails_when_forced_to_server(sandbox, tmp_path):
    sandbox.configure(filter_mode="ignored")
    report = preflight(sandbox.tap_config(), tmp_path / "auto")
    assert report.returncode == EXIT_WARN_ONLY, report.stdout
    assert report.grade("Customers: $filter dates") == "WARN"
    assert "$filter is ignored or refused" in report.line("Customers: $filter dates")
    forced = preflight(sandbox.tap_config(filter_support="server"), tmp_path / "forced")
    assert forced.returncode == EXIT_FAIL
    assert "set filter_support to auto" in forced.line("Customers: $filter dates")


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("utc", "reads a naive date literal as UTC, not as SFMC time (UTC-06:00)"),
        ("iso-only", "refuses 'M/d/yyyy h:mm:ss AM' date literals (ISO 8601 only)"),
    ],
)
def test_date_literals_read_another_way_are_named(sandbox, tmp_path, literal, expected):
    sandbox.configure(filter_date_literal=literal)
    report = preflight(sandbox.tap_config(), tmp_path)
    assert report.returncode == EXIT_WARN_ONLY, report.stdout
    line = report.line("Customers: $filter dates")
    assert report.grade("Customers: $filter dates") == "WARN"
    assert expected in line
    assert "the tap writes iso-utc literals" in line


def test_a_reshuffling_default_order_fails(sandbox, tmp_path):
    # The sandbox's reshuffle is a rotation (a scan that starts elsewhere each time), which
    # repeats the whole order, so any run of rows, about 2 times in N rows: N is large
    # enough to make that negligible.
    sandbox.create_de("Shuffled", size=3000, seed=4)
    sandbox.configure(orderby_mode="ignored", default_order="reshuffled")
    config = sandbox.tap_config(data_extension_keys=["Shuffled"], page_size=20)
    report = preflight(config, tmp_path)
    assert report.returncode == EXIT_FAIL
    line = report.line("Shuffled: row order")
    assert "$orderBy is ignored and the default order changes between requests" in line


def test_an_ignored_order_by_over_a_stable_default_order_is_ok(sandbox, tmp_path):
    sandbox.create_de("Stable", size=60, seed=4)
    sandbox.configure(orderby_mode="ignored", default_order="random-stable")
    config = sandbox.tap_config(data_extension_keys=["Stable"], page_size=20)
    report = preflight(config, tmp_path)
    assert report.grade("Stable: row order") == "OK"
    assert "the default order is the same on every request" in report.line("Stable: row order")


def test_wrong_credentials_and_invalid_config_fail_without_a_traceback(sandbox, tmp_path):
    secret = "wrong-secret-4b1c9d"
    report = preflight(sandbox.tap_config(client_secret=secret), tmp_path / "secret")
    assert report.returncode == EXIT_FAIL
    assert report.grade("token") == "FAIL"
    assert "check client_id/client_secret" in report.line("token")
    assert secret not in report.stdout + report.stderr
    invalid = preflight(sandbox.tap_config(subdomain="short"), tmp_path / "config")
    assert invalid.returncode == EXIT_FAIL
    assert invalid.grade("config") == "FAIL"
    assert "28 characters" in invalid.line("config")
