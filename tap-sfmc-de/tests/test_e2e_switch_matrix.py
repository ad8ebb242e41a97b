"""End-to-end switch matrix: hostile SFMC behaviours with live writers, nothing lost.

Pruned to one row per distinct code path while covering every value of each switch:
$filter honoured/ignored/rejected, date literals utc-6/utc/iso-only, $filter grammar
full/and-only, default order insertion/random-stable/reshuffled, writers that commit late;
inserts get keys in the middle of the table. Every run stays within ``max_pages_per_run``
rowset requests as the sandbox counts them. Lying pages: test_e2e_errors.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
from tap_sfmc_de_testkit import rowset_requests, run_tap, sandbox_latest_versions

pytestmark = pytest.mark.e2e

BUDGET = 12
MATRIX = [
    # filter_mode, filter_date_literal, filter_grammar, orderby_mode, default_order,
    # commit_lag_seconds
    ("honoured", "utc-6", "full", "honoured", "insertion", "0"),
    ("honoured", "utc", "and-only", "ignored", "random-stable", "0"),
    ("honoured", "iso-only", "and-only", "ignored", "insertion", "60"),
    ("ignored", "utc-6", "full", "ignored", "random-stable", "0"),
    ("ignored", "iso-only", "full", "honoured", "reshuffled", "60"),  # $orderBy: order moot
    ("rejected", "utc", "full", "ignored", "insertion", "0"),
]


def versions(records):
    return {(r["SubscriberKey"], r["ModifiedDate"]) for r in records}


def last_commit(sandbox, key):
    """When the sandbox's latest change to a DE became visible (None before any change)."""
    commits = [dt.datetime.fromisoformat(c["at"]) for c in sandbox.changes(key)["changes"]]
    return max(commits, default=None)


def caught_up(state, sandbox):
    """A run is caught up when its bookmark lies past every change the sandbox committed.

    The tap's window ends ``clock_margin_seconds`` before the server clock of its first
    response, so a change committed in the second(s) before a run is left to the next run
    by design: a run that emits nothing says nothing about those rows.
    """
    stream = (state or {}).get("bookmarks", {}).get("de_live", {})
    committed = last_commit(sandbox, "Live")
    if "window" in stream or "replication_key_value" not in stream:
        return False  # a backlog is left, or nothing was bookmarked
    return committed is None or dt.datetime.fromisoformat(stream["replication_key_value"]) > (
        committed
    )


def converge(sandbox, config, tmp_path, *, live_runs=3, max_runs=14, server_mode=False):
    """Runs with live changes, then quiet runs until one emits nothing and is caught up."""
    state, records = None, []
    for i in range(max_runs):
        if i < live_runs:
            # Page 2 is mid-window in a full load or a client-side scan; a later run in
            # server mode reads one page, so its change fires after its first response.
            after_page = 1 if i and server_mode else 2
            sandbox.scenario("Live", after_page=after_page, update=30, insert=20, delete=10)
        before = rowset_requests(sandbox)
        result = run_tap(config, tmp_path / f"run{i}", state=state)
        assert result.returncode == 0, result.stderr[-3000:]
        assert rowset_requests(sandbox) - before <= BUDGET
        records += result.records
        state = result.state
        if i >= live_runs and not result.records and caught_up(state, sandbox):
            return records, result
    pytest.fail("the tap did not converge")


@pytest.mark.parametrize("switches", MATRIX, ids="-".join)
def test_switch_matrix_loses_nothing_within_the_budget(sandbox, tmp_path, switches):
    filter_mode, literal, grammar, orderby, order, lag = switches
    sandbox.configure(
        filter_mode=filter_mode,
        filter_date_literal=literal,
        filter_grammar=grammar,
        orderby_mode=orderby,
        default_order=order,
        commit_lag_seconds=int(lag),
    )
    # Inserted keys sort into the middle of the table, not only after the last one.
    sandbox.create_de("Live", size=3000, seed=3, params={"insert_keys": "mid"})
    config = sandbox.tap_config(
        data_extension_keys=["Live"], page_size=500, max_pages_per_run=BUDGET
    )
    mode = "server" if filter_mode == "honoured" else "client"
    records, last = converge(sandbox, config, tmp_path, server_mode=mode == "server")
    assert sandbox_latest_versions(sandbox, "Live") <= versions(records)
    assert f"mode={mode}" in last.stderr


def test_a_change_committed_just_before_a_quiet_run_is_delivered_by_a_later_run(sandbox, tmp_path):
    # One live run, then quiet runs at once: the first quiet run starts within a second or
    # two of the change, so its window (server clock minus the margin) ends before it.
    # Emitting nothing there is by design; the change must arrive in a later run.
    sandbox.create_de("Live", size=3000, seed=3)
    config = sandbox.tap_config(
        data_extension_keys=["Live"], page_size=500, max_pages_per_run=BUDGET
    )
    records, _ = converge(sandbox, config, tmp_path, live_runs=1, server_mode=True)
    assert len(sandbox.changes("Live")["changes"]) == 1
    assert sandbox_latest_versions(sandbox, "Live") <= versions(records)


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
    # probes + 6 pages + one follow-up window, + the pages sent during the proof on the
    # first literal form (page_concurrency - 1, dropped when another form is proved)
    assert rowset_requests(sandbox) <= 3 + 6 + 1 + (4 - 1)
