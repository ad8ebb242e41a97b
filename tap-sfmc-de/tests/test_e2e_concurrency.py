"""End-to-end: pages read ahead (page_concurrency) against a slow sandbox, measured there."""

from __future__ import annotations

import json
import subprocess

import pytest
from tap_sfmc_de_testkit import (
    TAP_BIN,
    rowset_requests,
    run_tap,
    sandbox_latest_versions,
)

pytestmark = pytest.mark.e2e

LOWERED = "SFMC blocked requests for being too many at once (429 errorcode 50200)"
FAST_RETRIES = {"backoff_base_seconds": 0.05, "backoff_max_seconds": 0.2}


def keys(records):
    return [r["SubscriberKey"] for r in records]


def comparable(state, stream):
    """A stream's state without what depends on the run's clock."""
    bookmark = dict(state["bookmarks"][stream])
    bookmark.pop("replication_key_value")
    bookmark["capabilities"] = {k: v for k, v in bookmark["capabilities"].items() if k != "checked"}
    return bookmark


def test_pages_overlap_within_page_concurrency_and_equal_a_sequential_run(sandbox, tmp_path):
    sandbox.create_de("Paged", size=2000, seed=21)
    sandbox.configure(latency={"rowset": 0.2})
    runs = {}
    for concurrency in (1, 4):
        sandbox.reset_counters()
        config = sandbox.tap_config(
            data_extension_keys=["Paged"], page_size=200, page_concurrency=concurrency
        )
        result = run_tap(config, tmp_path / f"c{concurrency}")
        assert result.returncode == 0, result.stderr[-2000:]
        assert rowset_requests(sandbox) <= 50  # max_pages_per_run's default
        runs[concurrency] = (result, sandbox.rowset_in_flight_max())
    (sequential, one_at_a_time), (concurrent, in_flight) = runs[1], runs[4]
    assert one_at_a_time == 1
    assert 1 < in_flight <= 4
    assert keys(concurrent.records) == keys(sequential.records)  # same rows, same order
    assert len(set(keys(concurrent.records))) == 2000
    assert comparable(concurrent.state, "de_paged") == comparable(sequential.state, "de_paged")


def test_50200_lowers_the_concurrency_and_the_run_completes(sandbox, tmp_path):
    sandbox.create_de("Blocked", size=3000, seed=22)
    sandbox.configure(latency={"rowset": 0.3}, rowset_concurrency_limit=2)
    config = sandbox.tap_config(
        data_extension_keys=["Blocked"], page_size=200, page_concurrency=4, **FAST_RETRIES
    )
    result = run_tap(config, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(set(keys(result.records))) == 3000
    assert "window" not in result.state["bookmarks"]["de_blocked"]
    blocked = sandbox.rowset_concurrency_blocked()
    # Only the first burst of 4 met the limit of 2: from the first 50200 on, the tap kept
    # at most 2 requests in flight (retries included), so none was blocked again.
    assert 1 <= blocked <= 2, sandbox.log[-3000:]
    assert result.stderr.count(LOWERED) == 1
    assert "set page_concurrency to 2 or lower" in result.stderr


def test_a_small_budget_under_concurrency_resumes_without_loss(sandbox, tmp_path):
    sandbox.create_de("Budget", size=2000, seed=23)
    sandbox.configure(latency={"rowset": 0.1})
    budget = 5
    config = sandbox.tap_config(
        data_extension_keys=["Budget"], page_size=200, max_pages_per_run=budget,
        page_concurrency=4,
    )  # fmt: skip
    state, records, overlapped = None, [], 0
    for i in range(6):
        sandbox.reset_counters()
        result = run_tap(config, tmp_path / f"run{i}", state=state)
        assert result.returncode == 0, result.stderr[-2000:]
        assert rowset_requests(sandbox) <= budget
        overlapped = max(overlapped, sandbox.rowset_in_flight_max())
        records += result.records
        state = result.state
        if "window" not in state["bookmarks"]["de_budget"]:
            break
    else:
        pytest.fail("the DE was not read within 6 runs of 5 requests")
    assert overlapped > 1  # resumed runs read ahead within the small budget
    assert set(keys(records)) == {r["SubscriberKey"] for r in sandbox.rows("Budget")}


def test_rows_leaving_mid_run_are_not_lost_under_concurrency(sandbox, tmp_path):
    sandbox.create_de("Shift", size=3000, seed=24)
    sandbox.configure(latency={"rowset": 0.05})
    # Deletes and updates (rows leave the past window) while pages are in flight. Page 5
    # (not 3) fires it: pages 1-4 go out at once, so page 3 or 4 can be served first and
    # pages 1 and 2 after the change, leaving no drop for the guard to see (and nothing
    # lost); page 5 is only sent once page 1 was taken at the old count.
    sandbox.scenario("Shift", after_page=5, update=60, delete=150)
    config = sandbox.tap_config(data_extension_keys=["Shift"], page_size=200, page_concurrency=4)
    first = run_tap(config, tmp_path / "first")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "Rows shifted while paging" in first.stderr  # the guard stepped back
    # Rows only left the window: nothing may look like rows entering it.
    assert "entered a window" not in first.stderr
    # Later runs read the updated rows. A window ends clock_margin_seconds before the server
    # clock, so updates committed in the second before a run are left to the run after it.
    latest = sandbox_latest_versions(sandbox, "Shift")
    newest = max(modified for _, modified in latest)
    records, state = list(first.records), first.state
    for i in range(4):
        later = run_tap(config, tmp_path / f"later{i}", state=state)
        assert later.returncode == 0, later.stderr[-2000:]
        records += later.records
        state = later.state
        if state["bookmarks"]["de_shift"]["replication_key_value"] > newest:
            break
    else:
        pytest.fail("the bookmark did not pass the last update within 4 runs")
    emitted = {(r["SubscriberKey"], r["ModifiedDate"]) for r in records}
    assert latest <= emitted


def test_a_run_killed_while_pages_are_in_flight_resumes_without_a_gap(sandbox, tmp_path):
    sandbox.create_de("Killed", size=3000, seed=25)
    sandbox.configure(latency={"rowset": 0.3})
    config = sandbox.tap_config(data_extension_keys=["Killed"], page_size=200, page_concurrency=4)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.Popen(
        [TAP_BIN, "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    records, state = [], None
    try:
        for line in proc.stdout:  # the event waited for: a STATE a few pages in
            message = json.loads(line)
            if message["type"] == "RECORD":
                records.append(message["record"])
            elif message["type"] == "STATE":
                state = message["value"]
                window = state["bookmarks"]["de_killed"].get("window")
                if window and window["next_page"] >= 4:
                    break
    finally:
        proc.kill()  # SIGKILL: pages read ahead are in flight (0.3 s each)
        proc.wait(30)
        proc.stdout.close()
    assert state is not None, "the run ended before it could be killed"
    assert "window" in state["bookmarks"]["de_killed"], "the run ended before the kill"
    assert sandbox.rowset_in_flight_max() > 1
    resumed = run_tap(config, tmp_path / "resumed", state=state)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert set(keys(records + resumed.records)) == {
        r["SubscriberKey"] for r in sandbox.rows("Killed")
    }


def test_retried_requests_count_against_a_small_budget_under_concurrency(sandbox, tmp_path):
    # Pages read ahead meet the server's concurrency limit (50200) and are sent again: the
    # sandbox counts every request that arrives, so each resend must be paid from the budget.
    sandbox.create_de("Resent", size=1600, seed=26)
    sandbox.configure(latency={"rowset": 0.1}, rowset_concurrency_limit=2)
    budget = 5
    config = sandbox.tap_config(
        data_extension_keys=["Resent"], page_size=200, max_pages_per_run=budget,
        page_concurrency=4, **FAST_RETRIES,
    )  # fmt: skip
    state, records, blocked = None, [], 0
    for i in range(10):
        sandbox.reset_counters()
        result = run_tap(config, tmp_path / f"run{i}", state=state)
        assert result.returncode == 0, result.stderr[-2000:]
        blocked += sandbox.rowset_concurrency_blocked()
        assert rowset_requests(sandbox) <= budget, sandbox.log[-3000:]
        records += result.records
        state = result.state
        if "window" not in state["bookmarks"]["de_resent"]:
            break
    else:
        pytest.fail("the DE was not read within 10 runs of 5 requests")
    assert blocked >= 1  # the limit was met: resends happened
    assert set(keys(records)) == {r["SubscriberKey"] for r in sandbox.rows("Resent")}
