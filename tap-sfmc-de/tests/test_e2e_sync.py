"""End-to-end: the tap as a real subprocess against the sandbox over HTTP."""

from __future__ import annotations

import json
import math

import pytest
from tap_sfmc_de_testkit import rowset_requests, run_tap, sandbox_latest_versions

pytestmark = pytest.mark.e2e

COMBOS = [(f, o) for f in ("honoured", "ignored") for o in ("honoured", "ignored")] + [
    # The sources also leave open whether rowset refuses these parameters with a 400.
    ("honoured", "rejected"),
    ("rejected", "ignored"),
    ("rejected", "rejected"),
]


def versions(records):
    return {(r["SubscriberKey"], r["ModifiedDate"]) for r in records}


@pytest.mark.slow
def test_default_settings_200k_rows_over_three_runs(sandbox, tmp_path):
    """Done-when: 50 requests and a state, then the rest, then nothing new - with live changes."""
    sandbox.create_de("Big", size=200_000, seed=7)
    config = sandbox.tap_config(data_extension_keys=["Big"])
    run1 = run_tap(config, tmp_path / "run1")
    assert run1.returncode == 0, run1.stderr[-2000:]
    # The budget of 50 rowset requests covers the probes too (as the sandbox counts them).
    assert rowset_requests(sandbox) == 50
    data_pages = len(run1.records) // 2500
    assert len(run1.records) == data_pages * 2500 >= 47 * 2500
    assert run1.state["bookmarks"]["de_big"]["window"]["next_page"] == data_pages + 1
    assert "backlog remains: about" in run1.stderr
    # Live changes while run 2 pages (a step-back there costs one page of the budget).
    sandbox.scenario("Big", after_page=5, update=300, insert=200, delete=100)
    run2 = run_tap(config, tmp_path / "run2", state=run1.state)
    assert run2.returncode == 0, run2.stderr[-2000:]
    assert rowset_requests(sandbox) <= 100
    run3 = run_tap(config, tmp_path / "run3", state=run2.state)
    assert run3.returncode == 0, run3.stderr[-2000:]
    run4 = run_tap(config, tmp_path / "run4", state=run3.state)
    assert run4.records == []
    # Run 3 "emits nothing new": at most rows changed by the live scenario in run 2.
    changes = sandbox.changes("Big")
    changed = set(changes["updated"]) | set(changes["inserted"])
    assert {r["SubscriberKey"] for r in run3.records} <= changed
    emitted = versions(run1.records + run2.records + run3.records)
    assert sandbox_latest_versions(sandbox, "Big") <= emitted
    # Run 2 emits "the rest": everything not yet emitted, plus rows changed meanwhile.
    keys_1 = {r["SubscriberKey"] for r in run1.records}
    keys_2 = {r["SubscriberKey"] for r in run2.records}
    assert len(keys_1 | keys_2 | {r["SubscriberKey"] for r in run3.records}) >= 200_000 - 100
    bookmark = run3.state["bookmarks"]["de_big"]["replication_key_value"]
    assert bookmark.endswith("+00:00")


def test_a_first_run_costs_its_pages_and_three_probes_a_quiet_run_three_requests(sandbox, tmp_path):
    """Done-when, at a size the suite can afford: default settings, $filter honoured."""
    sandbox.create_de("Quiet", size=6000, seed=8)
    config = sandbox.tap_config(data_extension_keys=["Quiet"])
    before = rowset_requests(sandbox)
    first = run_tap(config, tmp_path / "first")
    assert first.returncode == 0, first.stderr[-2000:]
    assert len(first.records) == 6000
    assert rowset_requests(sandbox) - before <= math.ceil(6000 / 2500) + 3
    state = first.state
    for i in range(2):
        before = rowset_requests(sandbox)
        quiet = run_tap(config, tmp_path / f"quiet{i}", state=state)
        assert quiet.returncode == 0, quiet.stderr[-2000:]
        assert quiet.records == []
        assert rowset_requests(sandbox) - before <= 3
        state = quiet.state


@pytest.mark.parametrize(("filter_mode", "orderby_mode"), COMBOS)
def test_nothing_changed_is_lost_in_every_switch_combination(
    sandbox, tmp_path, filter_mode, orderby_mode
):
    sandbox.configure(filter_mode=filter_mode, orderby_mode=orderby_mode)
    sandbox.create_de("Live", size=3000, seed=3)
    budget = 12
    config = sandbox.tap_config(
        data_extension_keys=["Live"], page_size=200, max_pages_per_run=budget
    )
    state, records = None, []
    for i in range(14):  # runs with live changes while paging, then quiet runs to drain
        if i < 4:
            sandbox.scenario("Live", after_page=2, update=40, insert=25, delete=15)
        before = rowset_requests(sandbox)
        result = run_tap(config, tmp_path / f"run{i}", state=state)
        assert result.returncode == 0, result.stderr[-2000:]
        assert rowset_requests(sandbox) - before <= budget
        records += result.records
        state = result.state
    assert sandbox_latest_versions(sandbox, "Live") <= versions(records)
    mode = "server" if filter_mode == "honoured" else "client"
    assert f"mode={mode}" in result.stderr


def test_ties_larger_than_the_cap_are_worked_off(sandbox, tmp_path):
    # 600 rows share one ModifiedDate; the cap of 5 requests reads 3-4 pages of 100 per run.
    sandbox.create_de(
        "Ties",
        size=600,
        seed=5,
        params={"bulk_block_size": 600, "bulk_blocks": 1},
    )
    config = sandbox.tap_config(data_extension_keys=["Ties"], page_size=100, max_pages_per_run=5)
    state, keys = None, []
    for i in range(4):
        before = rowset_requests(sandbox)
        result = run_tap(config, tmp_path / f"t{i}", state=state)
        assert result.returncode == 0, result.stderr[-2000:]
        assert rowset_requests(sandbox) - before <= 5
        assert len(result.records) <= 400  # count probe + 4 pages once $filter is proved
        keys += [r["SubscriberKey"] for r in result.records]
        state = result.state
    assert len(set(keys)) == 600
    assert len({r["ModifiedDate"] for r in sandbox.rows("Ties")}) == 1


def test_full_mode_is_capped_and_restarts(sandbox, tmp_path):
    sandbox.create_de("Full", size=500, seed=9)
    config = sandbox.tap_config(
        data_extension_keys=["Full"], fetch_mode="full", page_size=100, max_pages_per_run=6
    )  # count probe + 3 data pages + 2 boundary probes
    run1 = run_tap(config, tmp_path / "f1")
    assert len(run1.records) == 300
    run2 = run_tap(config, tmp_path / "f2", state=run1.state)
    assert len(run2.records) == 200
    assert "window" not in run2.state["bookmarks"]["de_full"]
    run3 = run_tap(config, tmp_path / "f3", state=run2.state)
    assert len(run3.records) == 300
    assert {r["SubscriberKey"] for r in run1.records + run2.records} == {
        r["SubscriberKey"] for r in sandbox.rows("Full")
    }


def test_several_data_extensions_in_one_run(sandbox, tmp_path):
    sandbox.create_de("Orders-2024", size=120, seed=12)
    config = sandbox.tap_config(data_extension_keys=["Customers", "Orders-2024"], page_size=1000)
    result = run_tap(config, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert set(result.state["bookmarks"]) == {"de_customers", "de_orders_2024"}
    streams = [
        json.loads(line)["stream"] for line in result.stdout.splitlines() if '"RECORD"' in line
    ]
    assert streams.count("de_orders_2024") == 120
    assert streams.count("de_customers") == len(sandbox.rows("Customers"))


def test_failed_run_resumes_from_its_last_state_without_a_gap(sandbox, tmp_path):
    sandbox.create_de("Flaky", size=1000, seed=13)
    # Data pages 1-4 succeed; page 5 always fails (pages read ahead of it may succeed, so
    # the fault names the page rather than a count of requests).
    sandbox.add_faults({"endpoint": "rowset", "status": 500, "page": 5, "times": None})
    config = sandbox.tap_config(
        data_extension_keys=["Flaky"], page_size=100, max_retries=1, backoff_base_seconds=0.01
    )
    failed = run_tap(config, tmp_path / "failed")
    assert failed.returncode != 0
    assert len(failed.records) == 400
    assert failed.state["bookmarks"]["de_flaky"]["window"]["next_page"] == 5
    sandbox.clear_faults()
    resumed = run_tap(config, tmp_path / "resumed", state=failed.state)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert len(resumed.records) == 600  # no restart from page 1, no gap
    keys = {r["SubscriberKey"] for r in failed.records + resumed.records}
    assert keys == {r["SubscriberKey"] for r in sandbox.rows("Flaky")}
