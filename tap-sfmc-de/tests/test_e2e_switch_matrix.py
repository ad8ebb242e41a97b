"""End-to-end switch matrix: hostile SFMC behaviours with live writers, nothing lost.

Pruned to one row per distinct code path while covering every value of each switch:
$filter honoured/ignored/rejected, date literals utc-6/utc/iso-only, default order
insertion/random-stable/reshuffled, writers that commit late. Every run stays within
``max_pages_per_run`` rowset requests as the sandbox counts them.
"""

from __future__ import annotations

import pytest
from tap_sfmc_de_testkit import rowset_requests, run_tap, sandbox_latest_versions

pytestmark = pytest.mark.e2e

BUDGET = 12
MATRIX = [
    # filter_mode, filter_date_literal, orderby_mode, default_order, commit_lag_seconds
    ("honoured", "utc-6", "honoured", "insertion", "0"),
    ("honoured", "utc", "ignored", "random-stable", "0"),
    ("honoured", "iso-only", "ignored", "insertion", "60"),
    ("ignored", "utc-6", "ignored", "random-stable", "0"),
    ("ignored", "iso-only", "honoured", "reshuffled", "60"),  # $orderBy makes the order moot
    ("rejected", "utc", "ignored", "insertion", "0"),
]


def versions(records):
    return {(r["SubscriberKey"], r["ModifiedDate"]) for r in records}


def converge(sandbox, config, tmp_path, *, live_runs=3, max_runs=14):
    """Runs with live changes, then quiet runs until one emits nothing and has no backlog."""
    state, records = None, []
    for i in range(max_runs):
        if i < live_runs:
            sandbox.scenario("Live", after_page=2, update=30, insert=20, delete=10)
        before = rowset_requests(sandbox)
        result = run_tap(config, tmp_path / f"run{i}", state=state)
        assert result.returncode == 0, result.stderr[-3000:]
        assert rowset_requests(sandbox) - before <= BUDGET
        records += result.records
        state = result.state
        idle = "window" not in (state or {}).get("bookmarks", {}).get("de_live", {})
        if i >= live_runs and not result.records and idle:  # nothing new, no backlog
            return records, result
    pytest.fail("the tap did not converge")


@pytest.mark.parametrize("switches", MATRIX, ids="-".join)
def test_switch_matrix_loses_nothing_within_the_budget(sandbox, tmp_path, switches):
    filter_mode, literal, orderby, order, lag = switches
    sandbox.configure(
        filter_mode=filter_mode,
        filter_date_literal=literal,
        orderby_mode=orderby,
        default_order=order,
        commit_lag_seconds=int(lag),
    )
    sandbox.create_de("Live", size=3000, seed=3)
    config = sandbox.tap_config(
        data_extension_keys=["Live"], page_size=500, max_pages_per_run=BUDGET
    )
    records, last = converge(sandbox, config, tmp_path)
    assert sandbox_latest_versions(sandbox, "Live") <= versions(records)
    mode = "server" if filter_mode == "honoured" else "client"
    assert f"mode={mode}" in last.stderr


@pytest.mark.parametrize("filter_mode", ["honoured", "ignored"])
def test_reshuffled_default_order_fails_with_the_reason_instead_of_paging(
    sandbox, tmp_path, filter_mode
):
    sandbox.configure(filter_mode=filter_mode, orderby_mode="ignored", default_order="reshuffled")
    sandbox.create_de("Live", size=3000, seed=3)
    config = sandbox.tap_config(
        data_extension_keys=["Live"], page_size=500, max_pages_per_run=BUDGET
    )
    result = run_tap(config, tmp_path / "run")
    assert result.returncode != 0
    assert "different order on every request" in result.stderr
    assert "Traceback" not in result.stderr
    assert rowset_requests(sandbox) <= BUDGET
    assert result.state is None or "replication_key_value" not in (
        result.state["bookmarks"].get("de_live", {})
    )


def test_literal_read_as_utc_is_detected_and_another_form_proved(sandbox, tmp_path):
    sandbox.configure(filter_date_literal="utc")
    sandbox.create_de("Live", size=3000, seed=3)
    config = sandbox.tap_config(data_extension_keys=["Live"], page_size=500)
    result = run_tap(config, tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "date literal selected the wrong rows" in result.stderr
    assert result.state["bookmarks"]["de_live"]["capabilities"]["literal"] != "sfmc-local"
    assert rowset_requests(sandbox) <= 3 + 6 + 1  # probes + 6 pages + one follow-up window
