"""The window algorithm against an in-memory DE (no HTTP): caps, resume, shifts, ties."""

import dataclasses
import datetime as dt
import json
import logging
import random
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tap_sfmc_de import windows
from tap_sfmc_de.errors import SfmcApiError, SfmcConfigError
from tap_sfmc_de.server_capabilities import FilterMode, Verdict
from tap_sfmc_de.values import parse_sfmc_datetime
from tap_sfmc_de.windows import (
    MAX_RECENT,
    SEEN_PAGES,
    RecentRows,
    SeenRows,
    SyncPlan,
    Window,
    WindowSync,
    identity_digest,
    row_identity,
)
from tap_sfmc_de_testkit import CST, SERVER_NOW, FakeDE

LOG = logging.getLogger("test")
VERSIONS: list = []  # every (id, ModifiedDate) version emitted, across runs
PAST = SERVER_NOW - dt.timedelta(days=1)


def plan(**overrides):
    base = SyncPlan(
        incremental=True,
        replication_key="ModifiedDate",
        order_by="id asc",
        page_size=10,
        max_pages=5,  # count probe + $filter probe + 3 data pages
        filter_support="auto",
        start_date=None,
        tz=CST,
        clock_margin_seconds=1,
    )
    return dataclasses.replace(base, **overrides)


def run(de, state, **overrides):
    """One tap run: returns emitted ids and the state after the run."""
    state = dict(state)
    engine = WindowSync(
        rowset=de,
        plan=plan(**overrides),
        replication_value=lambda item: (
            parse_sfmc_datetime(item["values"]["modifieddate"], CST)
            if item["values"]["modifieddate"]
            else None
        ),
        convert=lambda item: {"id": item["keys"]["id"], "m": item["values"]["modifieddate"]},
        state=state,
        logger=LOG,
    )
    emitted = []
    for batch in engine.run():
        emitted.extend(r["id"] for r in batch.records)
        VERSIONS.extend((r["id"], r["m"]) for r in batch.records)
        if batch.state is not None:
            state.pop("window", None)
            state.pop("replication_key_value", None)
            state.update(batch.state)
    return emitted, state, engine.stats


def make_de(n, *, filter_honoured=True, order_honoured=True, when=PAST):
    de = FakeDE(filter_honoured=filter_honoured, order_honoured=order_honoured)
    for i in range(n):
        de.put(f"r{i:05d}", when + dt.timedelta(seconds=i % 7))
    return de


COMBOS = [(f, o) for f in (True, False) for o in (True, False)]


@pytest.mark.parametrize(("filter_honoured", "order_honoured"), COMBOS)
def test_backlog_is_worked_off_over_runs_within_the_cap(filter_honoured, order_honoured):
    de = make_de(75, filter_honoured=filter_honoured, order_honoured=order_honoured)
    # Every request counts: 2 probes + 3 data pages (+ 2 boundary probes in client mode).
    budget = 5 if filter_honoured else 8
    first, state, stats = run(de, {}, max_pages=budget)
    assert len(first) == 30
    assert stats.data_pages == 3
    assert state["window"]["next_page"] == 4
    assert "replication_key_value" not in state
    # Later runs reuse the checked capabilities: no $filter probe (one request less).
    budget -= filter_honoured
    second, state, _ = run(de, state, max_pages=budget)
    assert len(second) == 30
    third, state, _ = run(de, state, max_pages=budget)
    assert len(third) == 15
    assert set(first + second + third) == set(de.rows)
    assert len(first + second + third) == 75
    assert state["replication_key_value"].endswith("+00:00")
    fourth, state, _ = run(de, state, max_pages=budget)
    assert fourth == []


def test_server_mode_requests_carry_window_filter_and_order():
    de = make_de(5)
    run(de, {})
    data = [r for r in de.requests if r["page_size"] == 10]
    assert data[0]["filter"] == "ModifiedDate lt '5/8/2024 3:00:00 PM'"
    assert data[0]["order"] == "id asc"
    # The literal is proved on the first row read (r00000, 5/7/2024 3:00:00 PM).
    probe = [r for r in de.requests if r["filter"] and "3:00:01 PM" in r["filter"]]
    assert probe == [
        {
            "page": 1,
            "page_size": 1,
            "filter": "ModifiedDate ge '5/7/2024 3:00:00 PM' and "
            "ModifiedDate lt '5/7/2024 3:00:01 PM'",
            "order": "id asc",
        }
    ]


def test_probe_uses_the_window_filter_grammar_so_a_rejected_operator_falls_back():
    de = make_de(30)

    def no_ge(de_, request):  # a server that knows gt/lt but answers 400 to "ge"
        if request["filter"] and " ge " in request["filter"]:
            raise SfmcApiError("bad $filter", SimpleNamespace(status_code=400))

    de.hooks.append(no_ge)
    emitted, _, stats = run(
        de, {"replication_key_value": "2024-05-01T00:00:00+00:00"}, max_pages=10
    )
    assert stats.mode == "client"
    assert len(emitted) == 30


@pytest.mark.parametrize("filter_honoured", [True, False])
def test_server_serving_smaller_pages_fails_instead_of_skipping(filter_honoured):
    de = make_de(60, filter_honoured=filter_honoured)
    real_fetch = de.fetch

    def capped(*, page, page_size, **kwargs):  # honours at most 7 rows per page
        return real_fetch(page=page, page_size=min(page_size, 7), **kwargs)

    de.fetch = capped
    with pytest.raises(
        SfmcApiError, match=r"returned 7 rows for \$pageSize=10 .* set page_size to 7"
    ):
        run(de, {}, max_pages=50)


def test_filter_support_can_be_forced():
    de = make_de(5)
    _, _, stats = run(de, {}, filter_support="client")
    assert stats.mode == "client"
    assert not any(r["filter"] for r in de.requests)


@pytest.mark.parametrize(("filter_honoured", "order_honoured"), COMBOS)
def test_rows_changed_and_deleted_during_runs_are_not_lost(filter_honoured, order_honoured):
    de = make_de(60, filter_honoured=filter_honoured, order_honoured=order_honoured)
    changed = set()

    def mutate(de_, request):
        # After the first data page of every run: update rows ahead of and behind the
        # cursor, delete some ahead of it, insert new ones.
        if request["page_size"] != 10 or request["page"] != 2:
            return
        for pk in sorted(de_.rows)[::9][:4]:
            de_.touch(pk)
            changed.add(pk)
        for pk in sorted(de_.rows)[25:28]:
            de_.delete(pk)
            changed.discard(pk)
        new = f"n{len(de_.rows):05d}"
        de_.put(new, de_.now)
        changed.add(new)

    de.hooks.append(mutate)
    VERSIONS.clear()
    state = {}
    for _ in range(6):
        _, state, _ = run(de, state, max_pages=10)
    de.hooks.clear()
    for _ in range(6):  # quiet runs drain what changed during the last mutating runs
        emitted, state, _ = run(de, state, max_pages=10)
    assert emitted == []
    # The latest version of every row (changed, inserted or untouched) was emitted.
    latest = {(pk, row["modifieddate"]) for pk, row in de.rows.items()}
    assert latest <= set(VERSIONS)
    assert changed <= {pk for pk, _ in VERSIONS}


def test_count_drop_steps_back_in_server_mode():
    de = make_de(40)

    def delete_behind(de_, request):
        if request["page_size"] == 10 and request["page"] == 3 and "r00000" in de_.rows:
            for pk in ["r00000", "r00001", "r00002"]:
                de_.delete(pk)

    de.hooks.append(delete_behind)
    emitted, state, stats = run(de, {}, max_pages=10)
    assert stats.step_backs == 1
    assert set(de.rows) <= set(emitted)
    assert len(emitted) == len(set(emitted))  # de-duplicated within the run
    assert "window" not in state


def test_client_mode_boundary_probe_catches_insert_plus_delete():
    de = make_de(40, filter_honoured=False)

    def shuffle(de_, request):
        # Between page 1 and page 2: delete 2 rows behind the cursor and insert 2 ahead of
        # it. The count is unchanged, yet offsets shifted: only the boundary probe notices.
        probe = {"page": 10, "page_size": 1, "filter": None, "order": "id asc"}
        if request == probe and "r00001" in de_.rows:
            de_.delete("r00001")
            de_.delete("r00002")
            de_.put("z0", PAST)
            de_.put("z1", PAST)

    de.hooks.append(shuffle)
    emitted, _, stats = run(de, {}, max_pages=20)
    assert stats.step_backs >= 1
    assert set(de.rows) <= set(emitted)


def test_ties_larger_than_the_cap_cannot_stall():
    de = FakeDE()
    for i in range(100):
        de.put(f"r{i:05d}", PAST)  # all rows share one ModifiedDate
    state, seen = {}, []
    for _ in range(4):
        emitted, state, _ = run(de, state)
        seen.extend(emitted)
    assert len(seen) == 100
    assert set(seen) == set(de.rows)
    assert "window" not in state


def test_start_date_is_the_first_lower_bound_and_rows_outside_are_skipped():
    de = FakeDE(filter_honoured=False)
    de.put("old", PAST - dt.timedelta(days=30))
    de.put("new", PAST)
    emitted, _, stats = run(de, {}, start_date=PAST - dt.timedelta(days=1), max_pages=4)
    assert emitted == ["new"]
    assert stats.outside_window == 1


def test_null_replication_keys_are_counted_not_emitted():
    de = FakeDE(filter_honoured=False)
    de.put("a", PAST)
    de.rows["a"]["modifieddate"] = ""
    de.put("b", PAST)
    emitted, _, stats = run(de, {}, max_pages=3)
    assert emitted == ["b"]
    assert stats.null_replication_key == 1


def test_empty_de_makes_two_probe_requests_at_most():
    de = FakeDE()
    emitted, state, stats = run(de, {})
    assert emitted == []
    assert state == {}
    assert stats.probe_requests == 1
    assert stats.data_pages == 0


def test_full_mode_passes_are_capped_and_restart():
    de = make_de(25)
    first, state, _ = run(de, {}, incremental=False, replication_key=None, max_pages=4)
    assert len(first) == 20
    assert "replication_key_value" not in state
    second, state, _ = run(de, state, incremental=False, replication_key=None, max_pages=4)
    assert len(second) == 5
    assert state == {}
    third, _, _ = run(de, state, incremental=False, replication_key=None, max_pages=4)
    assert len(third) == 20


def test_window_state_round_trip():
    window = Window(PAST, SERVER_NOW, "server", 4, 100, "5e2bd30d65dbed19")
    assert Window.from_state(window.to_state()) == window
    assert window.to_state()["upper"] == "2024-05-08T21:00:00+00:00"


def test_mode_change_restarts_the_window():
    de = make_de(50)
    _, state, _ = run(de, {}, filter_support="server")
    assert state["window"]["mode"] == "server"
    emitted, state, _ = run(de, state, filter_support="client")
    assert state["window"]["mode"] == "client"
    assert emitted[0] == "r00000"


def test_switching_fetch_mode_discards_the_other_modes_cursor():
    de = make_de(50)
    _, state, _ = run(de, {})
    assert state["window"]["upper"]
    emitted, state, _ = run(de, state, incremental=False, replication_key=None)
    assert emitted[0] == "r00000"
    assert state["window"]["upper"] is None
    emitted, state, _ = run(de, state)
    assert state["window"]["upper"] is not None


def test_rows_entering_a_past_window_are_reported(caplog):
    de = make_de(40)

    def backdate(de_, request):
        if request["page_size"] == 10 and request["page"] == 2 and "old" not in de_.rows:
            de_.put("old", PAST)  # a writer that stamps ModifiedDate in the past

    de.hooks.append(backdate)
    with caplog.at_level(logging.WARNING):
        run(de, {}, max_pages=10)
    assert "entered a window that lies in the past" in caplog.text


@pytest.mark.parametrize("filter_honoured", [True, False])
def test_mass_deletion_between_runs_steps_back_far_enough(filter_honoured):
    de = make_de(100, filter_honoured=filter_honoured)
    # 5 data pages (+ 4 boundary probes and a second $filter probe client-side)
    budget = 7 if filter_honoured else 12
    first, state, _ = run(de, {}, max_pages=budget)
    assert state["window"]["next_page"] == 6
    for pk in sorted(de.rows)[:45]:
        de.delete(pk)
    second, state, stats = run(de, state, max_pages=40)
    assert stats.step_backs >= 1
    assert set(de.rows) <= set(first + second)


@pytest.mark.parametrize("order_honoured", [True, False])
def test_client_mode_deletions_masked_by_inserts_between_runs(order_honoured):
    de = make_de(100, filter_honoured=False, order_honoured=order_honoured)
    first, state, _ = run(de, {}, max_pages=5)
    for pk in sorted(de.rows)[:25]:  # 2.5 pages deleted behind the cursor ...
        de.delete(pk)
    for i in range(25):  # ... and as many rows inserted: the count does not move
        de.put(f"z{i:03d}", PAST)
    second, _, _ = run(de, state, max_pages=50)
    assert set(de.rows) <= set(first + second)


@pytest.mark.parametrize("filter_honoured", [True, False])
@pytest.mark.parametrize(("old", "new"), [(10, 25), (25, 10), (10, 7)])
@pytest.mark.parametrize("deleted", [0, 15])
def test_changing_page_size_between_runs_never_skips(old, new, deleted, filter_honoured):
    de = make_de(100, filter_honoured=filter_honoured)
    first, state, _ = run(de, {}, page_size=old, max_pages=5)
    assert state["window"]["page_size"] == old
    for pk in sorted(de.rows)[:deleted]:  # rows behind the cursor vanish between runs
        de.delete(pk)
    second, state, _ = run(de, state, page_size=new, max_pages=50)
    assert set(de.rows) <= set(first + second)


def test_filter_that_leaks_rows_falls_back_to_client_mode(caplog):
    de = make_de(30)
    bookmark = "2024-05-07T21:00:03+00:00"  # rows r...0-r...2 (+7k) are older than this
    real_matching = de.matching

    def leaky(filter_expr):
        # Honours the far-future probe but ignores the window's lower bound.
        if filter_expr and "2998" not in filter_expr:
            return real_matching(filter_expr.split(" and ")[-1])
        return real_matching(filter_expr)

    de.matching = leaky
    with caplog.at_level(logging.WARNING):
        emitted, _, stats = run(de, {"replication_key_value": bookmark}, max_pages=10)
    assert "switching to client-side filtering" in caplog.text
    assert stats.mode == "client"
    lower = dt.datetime(2024, 5, 7, 21, 0, 3, tzinfo=dt.UTC)
    expected = {
        pk for pk, row in de.rows.items() if parse_sfmc_datetime(row["modifieddate"], CST) >= lower
    }
    assert set(emitted) == expected


@pytest.mark.parametrize(
    "state",
    [
        {"replication_key_value": "last tuesday"},
        {"replication_key_value": 1715202245},
        {"window": {"lower": None, "upper": "2024-05-08T21:00:00+00:00", "next_page": "x"}},
        {"window": {"upper": "soon"}},
        {"window": {"upper": "2024-05-08T21:00:00+00:00", "next_page": 2, "count_seen": "n"}},
    ],
)
def test_unusable_state_is_refused_with_the_fix(state):
    with pytest.raises(SfmcConfigError, match="pass the last STATE the target emitted"):
        run(make_de(5), state)


def test_client_mode_shift_beyond_the_budget_restarts_the_window(caplog):
    de = make_de(100, filter_honoured=False, order_honoured=False)
    first, state, _ = run(de, {}, max_pages=11)  # 5 data pages, 4 boundary probes
    for pk in sorted(de.rows)[:45]:  # the last row read moves 4.5 pages back ...
        de.delete(pk)
    for i in range(45):  # ... and the count does not move
        de.put(f"z{i:03d}", PAST)
    with caplog.at_level(logging.WARNING):
        second, state, _ = run(de, state, max_pages=5)  # too few pages to walk back that far
    assert "starts over from page 1" in caplog.text
    assert state["window"]["next_page"] == 1
    later = []
    for _ in range(5):
        emitted, state, _ = run(de, state, max_pages=12)
        later += emitted
    assert set(de.rows) <= set(first + second + later)


def _faulty(de, fault, *, pages=(3,), times=None):
    """Wrap ``de.fetch`` so data pages in ``pages`` are answered by ``fault(page)``."""
    real_fetch, fired = de.fetch, []

    def fetch(*, page, page_size, **kwargs):
        result = real_fetch(page=page, page_size=page_size, **kwargs)
        if page_size > 1 and page in pages and (times is None or len(fired) < times):
            fired.append(page)
            return fault(result, page_size)
        return result

    de.fetch = fetch
    return fired


def _empty_but_more(result, _size):
    return dataclasses.replace(result, items=[], has_next=True)


def _empty_with_count(result, _size):
    return dataclasses.replace(result, items=[], has_next=False)


def _count_jump(result, _size):
    return dataclasses.replace(result, count=result.count + 500, has_next=False)


def _longer(result, size):
    return dataclasses.replace(result, items=result.items + result.items[: size // 2])


FAULTS = [_empty_but_more, _empty_with_count, _count_jump, _longer]


@pytest.mark.parametrize("filter_honoured", [True, False])
@pytest.mark.parametrize("fault", FAULTS)
def test_inconsistent_page_is_retried_not_taken_as_the_end(fault, filter_honoured):
    de = make_de(60, filter_honoured=filter_honoured)
    fired = _faulty(de, fault, times=1)
    emitted, state, _ = run(de, {}, max_pages=30)
    assert fired == [3]
    assert set(emitted) == set(de.rows)
    assert "window" not in state


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (_empty_but_more, r"served no rows on page 3 but a link to a next page"),
        (_empty_with_count, r"served no rows on page 3 although count=60"),
        (_count_jump, r"served rows up to 30 on its last page but count=560"),
        (_longer, r"served 15 rows for \$pageSize=10"),
    ],
)
def test_persistently_inconsistent_page_fails_the_run_naming_what_sfmc_did(fault, message):
    de = make_de(60)
    _faulty(de, fault)
    state = {}

    def collect():
        for batch in WindowSync(
            rowset=de, plan=plan(max_pages=30), replication_value=_rk, convert=_convert,
            state={}, logger=LOG,
        ).run():  # fmt: skip
            if batch.state is not None:
                state.update(batch.state)

    with pytest.raises(SfmcApiError, match=message + r".*\(3 times in a row\)"):
        collect()
    assert state["window"]["next_page"] == 3  # the cursor stays at the last complete page
    assert "replication_key_value" not in state


def _rk(item):
    raw = item["values"]["modifieddate"]
    return parse_sfmc_datetime(raw, CST) if raw else None


def _convert(item):
    return {"id": item["keys"]["id"]}


def test_a_bookmark_always_wins_over_a_moving_start_date():
    de = make_de(0)
    de.put("a", PAST)
    _, state, _ = run(de, {}, start_date=PAST - dt.timedelta(days=1))
    bookmark = dt.datetime.fromisoformat(state["replication_key_value"])
    de.now += dt.timedelta(minutes=1)
    de.put("b", bookmark + dt.timedelta(seconds=10))  # changed after the bookmark ...
    # ... and a relative start_date ("today") has since moved past it.
    emitted, _, _ = run(de, state, start_date=bookmark + dt.timedelta(seconds=30))
    assert emitted == ["b"]


@pytest.mark.parametrize("filter_honoured", [True, False])
def test_every_rowset_request_counts_toward_the_budget(filter_honoured):
    de = make_de(200, filter_honoured=filter_honoured, order_honoured=False)
    state = {}
    for budget in (3, 4, 7, 12):
        before = len(de.requests)
        _, state, stats = run(de, state, max_pages=budget)
        assert len(de.requests) - before <= budget
        assert stats.data_pages + stats.probe_requests == len(de.requests) - before


def test_a_quiet_run_costs_at_most_three_requests_when_the_server_filters():
    de = make_de(250)
    _, state, _ = run(de, {}, max_pages=50)
    for _ in range(3):
        before = len(de.requests)
        emitted, state, _ = run(de, state, max_pages=50)
        assert emitted == []
        assert len(de.requests) - before <= 3


def test_a_completed_window_never_chains_empty_follow_ups():
    de = make_de(250)
    emitted, state, stats = run(de, {}, max_pages=50)
    assert len(emitted) == 250
    # 2 probes + 25 pages + at most one (empty) follow-up window.
    assert len(de.requests) <= 2 + 25 + 1
    assert stats.windows_completed <= 2
    assert "window" not in state


def test_budget_end_reports_the_backlog(caplog):
    de = make_de(100)
    with caplog.at_level(logging.INFO):
        _, _, stats = run(de, {}, max_pages=5)
    assert stats.backlog == 70
    assert "backlog remains: about 70 rows; the next run continues" in caplog.text


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ({"replication_key_value": "2030-01-01T00:00:00+00:00"}, "bookmark .* lies after"),
        (
            {"window": {"lower": None, "upper": "2030-01-01T00:00:00+00:00", "mode": "server"}},
            "window ends at .* after SFMC's clock",
        ),
        (
            {
                "replication_key_value": "2024-05-01T00:00:00+00:00",
                "window": {"lower": "2024-05-02T00:00:00+00:00", "upper": None, "mode": "server"},
            },
            "window starts after its bookmark",
        ),
    ],
)
def test_future_or_foreign_state_is_refused_with_the_fix(state, problem):
    with pytest.raises(SfmcConfigError, match=problem + r".*meltano state clear"):
        run(make_de(5), state)


@pytest.mark.parametrize(
    "window",
    [
        {"upper": "2024-05-08T21:00:00+00:00", "mode": "sideways"},
        {"upper": "2024-05-08T21:00:00+00:00", "mode": "client", "boundary": "Jane Doe"},
        "page 3",
    ],
)
def test_corrupt_window_is_refused_with_the_fix(window):
    with pytest.raises(SfmcConfigError, match="meltano state clear"):
        run(make_de(5), {"window": window})


def test_lookback_reads_late_commits_and_skips_rows_already_emitted():
    de = FakeDE()
    for pk in ("a", "b", "c"):
        de.put(pk, SERVER_NOW - dt.timedelta(seconds=30))
    first, state, _ = run(de, {}, lookback_seconds=300)
    assert sorted(first) == ["a", "b", "c"]
    assert len(state["recent"]) == 3  # digests only, never values
    assert all(len(k) == 16 for k in state["recent"])
    bookmark = dt.datetime.fromisoformat(state["replication_key_value"])
    # An import stamped a minute before the bookmark commits only now.
    de.put("late", bookmark - dt.timedelta(seconds=60))
    de.touch("b")  # and a real update of an emitted row
    second, state, stats = run(de, state, lookback_seconds=300)
    assert sorted(second) == ["b", "late"]
    assert stats.already_emitted == 2  # a and c re-read, recognised
    de.now += dt.timedelta(seconds=5)
    before = len(de.requests)
    third, _, stats = run(de, state, lookback_seconds=300)
    assert third == []
    assert stats.already_emitted == 4
    assert len(de.requests) - before <= 3  # the lookback rows fit the one window page


def test_lookback_emits_a_row_rewritten_within_the_same_second_as_its_emitted_version():
    de = FakeDE()
    stamp = SERVER_NOW - dt.timedelta(seconds=30)
    de.put("a", stamp, points="1")
    first, state, _ = run(de, {}, lookback_seconds=300)
    assert first == ["a"]
    # A second writer stamped the row in the same second and commits only now: same
    # (key, ModifiedDate), newer values. It must not pass for the version already emitted.
    de.put("a", stamp, points="2")
    second, state, stats = run(de, state, lookback_seconds=300)
    assert second == ["a"]
    assert stats.already_emitted == 0
    de.now += dt.timedelta(seconds=5)
    third, _, stats = run(de, state, lookback_seconds=300)
    assert third == []
    assert stats.already_emitted == 1  # the same version re-read is still recognised


def test_lookback_memory_is_bounded_and_forgets_what_no_lookback_reaches():
    de = FakeDE()
    for i in range(40):
        de.put(f"r{i}", SERVER_NOW - dt.timedelta(seconds=400 - i * 10))
    _, state, _ = run(de, {}, lookback_seconds=120, max_pages=20)
    # Only rows within 120 s of the bookmark are remembered.
    bookmark = dt.datetime.fromisoformat(state["replication_key_value"])
    reachable = [
        pk
        for pk, row in de.rows.items()
        if parse_sfmc_datetime(row["modifieddate"], CST) >= bookmark - dt.timedelta(seconds=120)
    ]
    assert len(state["recent"]) == len(reachable) < 40


def test_a_server_reading_literals_as_utc_is_caught_and_iso_literals_proved():
    de = make_de(60)
    de.literal_tz = dt.UTC  # '5/7/2024 3:00:00 PM' read 6 hours off
    emitted, state, stats = run(de, {}, max_pages=20)
    assert stats.mode == "server"
    assert state["capabilities"]["literal"] == "iso-utc"
    assert set(emitted) == set(de.rows)
    data = [r for r in de.requests if r["page_size"] == 10]
    assert data[0]["filter"].startswith("ModifiedDate lt '2024-05-08T")
    assert data[0]["filter"].endswith("Z'")
    # Quiet runs reuse the verdict: count probe + one window page.
    before = len(de.requests)
    assert run(de, state, max_pages=20)[0] == []
    assert len(de.requests) - before <= 3


def test_no_literal_form_proved_falls_back_to_client_filtering():
    de = make_de(30)
    de.literal_tz = dt.timezone(dt.timedelta(hours=5))  # misreads both naive forms ...

    def no_iso(de_, request):  # ... and refuses ISO literals
        if request["filter"] and "Z'" in request["filter"]:
            raise SfmcApiError("bad $filter", SimpleNamespace(status_code=400))

    de.hooks.append(no_iso)
    emitted, state, stats = run(de, {}, max_pages=20)
    assert stats.mode == "client"
    assert state["capabilities"]["mode"] == "client"
    assert set(emitted) == set(de.rows)


def test_verdict_is_rechecked_after_a_day():
    de = make_de(30)
    _, state, _ = run(de, {}, max_pages=20)
    probes = lambda: [r for r in de.requests if r["filter"] and "3:00:01 PM" in r["filter"]]  # noqa: E731
    assert len(probes()) == 1
    run(de, state, max_pages=20)
    assert len(probes()) == 1  # reused
    de.now += dt.timedelta(days=1, seconds=5)
    run(de, state, max_pages=20)
    assert len(probes()) == 2  # checked again


def test_unstable_default_order_fails_with_the_reason():
    de = make_de(60, order_honoured=False)
    real_matching = de.matching
    flip = []

    def reshuffled(filter_expr):  # a new order on every request
        flip.append(1)
        rows = real_matching(filter_expr)
        k = len(flip) % len(rows) if rows else 0
        return rows[k:] + rows[:k]

    de.matching = reshuffled
    with pytest.raises(SfmcApiError, match="different order on every request"):
        run(de, {}, max_pages=20, order_by=None)


@pytest.mark.parametrize("seed", range(30))
def test_a_small_reshuffled_de_is_judged_unstable_whatever_the_shuffle(seed):
    # Judged on one re-read row, a reshuffle put the same row back in place about 2 times
    # in N (3 of these 30 shuffles with N = 12), and the tap paged by offset over it.
    de = make_de(12, order_honoured=False)
    rng, real_matching = random.Random(seed), de.matching

    def reshuffled(filter_expr):
        rows = list(real_matching(filter_expr))
        rng.shuffle(rows)
        return rows

    de.matching = reshuffled
    with pytest.raises(SfmcApiError, match="different order on every request"):
        run(de, {}, max_pages=20, order_by=None, page_size=6)


@pytest.mark.parametrize("filter_honoured", [True, False])
def test_stable_default_order_is_judged_once_and_paged(filter_honoured):
    de = make_de(60, filter_honoured=filter_honoured, order_honoured=False)
    emitted, state, _ = run(de, {}, max_pages=30, order_by=None)
    assert state["capabilities"]["order"] == "stable"
    assert set(emitted) == set(de.rows)


@pytest.mark.parametrize("mode", ["server", "client"])
def test_state_written_by_the_string_mode_tap_is_read_and_written_back_unchanged(mode):
    # Modes are StrEnums now; STATE keeps the wire values the tap always wrote.
    window_state = {
        "lower": "2024-05-01T00:00:00+00:00",
        "upper": "2024-05-08T20:59:59+00:00",
        "mode": mode,
        "next_page": 3,
        "count_seen": 7,
        "boundary": "0123456789abcdef",
        "page_size": 2,
    }
    window = Window.from_state(window_state)
    assert window.mode == FilterMode(mode)
    assert json.dumps(window.to_state()) == json.dumps(window_state)
    capabilities = {"mode": mode, "literal": "iso-utc", "order": "stable", "checked": None}
    verdict = Verdict.from_state(capabilities)
    assert verdict is not None
    assert verdict.mode == FilterMode(mode)
    assert json.dumps(verdict.to_state()) == json.dumps(capabilities)
    with pytest.raises(ValueError, match="unknown window mode"):
        Window.from_state({**window_state, "mode": "SERVER"})


# --- memory: what a pass and the lookback remember is bounded, not one entry per row ------
def test_a_pass_remembers_the_rows_of_a_few_pages_not_every_row(monkeypatch):
    passes, real = [], windows._Pass

    def recorded(**kwargs):
        passes.append(real(**kwargs))
        return passes[-1]

    monkeypatch.setattr(windows, "_Pass", recorded)
    pages = 4 * SEEN_PAGES
    de = make_de(10 * pages)
    emitted, _, _ = run(de, {}, max_pages=pages + 5)
    assert sorted(emitted) == sorted(de.rows)  # every row once, in the first window's pass
    # O(page_size): the rows of at most 2 * SEEN_PAGES + 1 pages, not the pass's 400 rows.
    assert len(passes[0].seen) <= (2 * SEEN_PAGES + 1) * 10 < len(emitted)


def test_seen_rows_recognise_rows_read_again_within_the_span():
    seen = SeenRows(span=3)
    identity = (("id", "a"),)
    assert seen.first_read(identity, 5)
    for page in range(6, 9):  # still within 3 pages of the furthest page
        assert not seen.first_read(identity, 4)
        assert seen.first_read((("id", page),), page)
    for page in range(9, 30):
        seen.first_read((("id", page),), page)
    assert seen.first_read(identity, 5)  # forgotten: emitted once more, never dropped
    assert len(seen) <= 2 * 3 + 1


def test_rows_shifted_further_than_the_span_are_emitted_again_not_lost():
    # Client mode: 12 pages of rows inserted at the front push the boundary row forward,
    # the walk-back re-reads every earlier page (rows from beyond SEEN_PAGES come again).
    de = make_de(10 * (SEEN_PAGES + 5), filter_honoured=False)

    def insert_front(de_, request):
        if (
            request["page_size"] == 10
            and request["page"] == SEEN_PAGES + 3
            and "a0" not in de_.rows
        ):
            for i in range(120):
                de_.put(f"a{i}", PAST)
                de_.insertion.insert(0, de_.insertion.pop())

    de.hooks.append(insert_front)
    emitted, _, _ = run(de, {}, max_pages=200)
    assert set(de.rows) - {f"a{i}" for i in range(120)} <= set(emitted)
    assert len(emitted) > len(set(emitted))  # the price of the bound: some came twice


def _reference_note(digests, item, value, upper, lookback):
    """RecentRows.note as first written: hash every row, keep those near upper."""
    values = tuple(sorted((item.get("values") or {}).items()))
    digest = identity_digest((*row_identity(item), ("@rk", value.isoformat()), ("@v", values)))
    if digest in digests:
        return False
    if value >= upper - lookback:
        digests[digest] = int(value.timestamp())
    return True


@given(
    notes=st.lists(
        st.tuples(st.integers(0, 5), st.integers(-900, 0), st.sampled_from(["x", "y"])),
        max_size=60,
    ),
    saved=st.lists(st.tuples(st.integers(0, 5), st.integers(-900, 0)), max_size=5),
)
@settings(max_examples=150)
def test_recent_rows_recognise_what_the_plain_definition_does(notes, saved):
    upper = SERVER_NOW
    lookback = dt.timedelta(seconds=300)

    def row(key, offset, value="x"):
        return {"keys": {"id": str(key)}, "values": {"v": value}}, upper + dt.timedelta(
            seconds=offset
        )

    reference: dict[str, int] = {}
    for key, offset in saved:
        _reference_note(reference, *row(key, offset), upper, dt.timedelta(days=1))
    recent = RecentRows(lookback)
    recent.load(dict(reference))
    for key, offset, value in notes:
        item, rk = row(key, offset, value)
        assert recent.note(item, rk, upper) == _reference_note(reference, item, rk, upper, lookback)
    assert recent.digests == reference


def test_recent_rows_stay_bounded_within_a_window_and_prune_as_before():
    recent = RecentRows(dt.timedelta(seconds=3600))
    reference: dict[str, int] = {}
    upper = SERVER_NOW
    largest = 0
    for i in range(3 * MAX_RECENT):  # a burst: every row changed just before upper
        item = {"keys": {"id": f"r{i}"}, "values": {}}
        rk = upper - dt.timedelta(seconds=i % 3000)
        recent.note(item, rk, upper)
        _reference_note(reference, item, rk, upper, recent.lookback)
        largest = max(largest, len(recent.digests))
    assert largest <= 2 * MAX_RECENT
    recent.prune(upper)
    newest = sorted(((v, k) for k, v in reference.items()), reverse=True)[:MAX_RECENT]
    assert sorted(recent.digests.values()) == sorted(v for v, _ in newest)
