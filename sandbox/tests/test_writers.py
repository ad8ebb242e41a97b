"""Writers that commit late (commit lag) and inserts that land mid-table in key order."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from api_sandbox.testing import SandboxError

NUMBER_FIELDS = [
    {"name": "Id", "field_type": "Number", "is_primary_key": True},
    {"name": "ModifiedDate", "field_type": "Date"},
]


def _stamp_and_visibility(sandbox, change):
    rows = {r["SubscriberKey"]: r for r in sandbox.rows()}
    return [rows[k]["ModifiedDate"] for k in change["updated"] + change["inserted"]]


@pytest.mark.parametrize("lag", [0, 90, 3600])
def test_mutate_lag_stamps_modified_date_in_the_past(sandbox, rowset, lag):
    change = sandbox.mutate("Customers", update=2, insert=2, lag_seconds=lag)
    at, stamped = datetime.fromisoformat(change["at"]), datetime.fromisoformat(change["stamped"])
    assert at - stamped == timedelta(seconds=lag)
    assert change["lag_seconds"] == lag
    assert _stamp_and_visibility(sandbox, change) == [change["stamped"]] * 4
    # visible now, although stamped before "now": a reader whose window ended at
    # change["at"] - 1 s never saw these rows, a window starting there never will
    body = rowset(filter=f"ModifiedDate gte '{change['stamped']}'").json()
    assert body["count"] == 4


def test_commit_lag_switch_is_the_default_for_mutate_and_scenarios(sandbox, rowset):
    sandbox.configure(commit_lag_seconds=120)
    change = sandbox.mutate("Customers", insert=1)
    assert change["lag_seconds"] == 120
    assert sandbox.mutate("Customers", insert=1, lag_seconds=0)["lag_seconds"] == 0
    sandbox.scenario("Customers", after_page=1, update=1)
    sandbox.scenario("Customers", after_page=1, update=1, lag_seconds=30)
    rowset(pageSize=1)
    fired = [c for c in sandbox.changes("Customers")["changes"] if c["trigger"] != "admin"]
    assert [c["lag_seconds"] for c in fired] == [120, 30]


def test_negative_lag_is_rejected(sandbox):
    with pytest.raises(SandboxError, match="400"):
        sandbox.mutate("Customers", insert=1, lag_seconds=-1)
    with pytest.raises(SandboxError, match="400"):
        sandbox.scenario("Customers", insert=1, lag_seconds=-1)


def _pk_positions(rowset, key, new_keys, pk):
    body = rowset(key, pageSize=2500, orderBy=f"{pk} asc").json()
    order = [it["keys"][pk.lower()] for it in body["items"]]
    return [order.index(str(k)) for k in new_keys], len(order)


def test_append_inserts_sort_after_every_key(sandbox, rowset):
    sandbox.create_de("Txt", size=200, seed=3)
    change = sandbox.mutate("Txt", insert=5)
    positions, total = _pk_positions(rowset, "Txt", change["inserted"], "SubscriberKey")
    assert sorted(positions) == list(range(total - 5, total))


def test_mid_inserts_land_inside_the_key_order_text(sandbox, rowset):
    sandbox.create_de("Txt", size=200, seed=3, params={"insert_keys": "mid"})
    change = sandbox.mutate("Txt", insert=20)
    assert len(change["inserted"]) == 20
    positions, total = _pk_positions(rowset, "Txt", change["inserted"], "SubscriberKey")
    assert total == 220
    assert sum(p < total - 20 for p in positions) >= 15  # almost all land mid-table
    # but insertion order still appends them
    keys = [r["SubscriberKey"] for r in sandbox.rows("Txt")]
    assert keys[-20:] == change["inserted"]


def test_mid_inserts_land_inside_the_key_order_number(sandbox, rowset):
    sandbox.create_de("Num", fields=NUMBER_FIELDS, size=100, params={"insert_keys": "mid"})
    base = [r["Id"] for r in sandbox.rows("Num")]
    assert base[:3] == [0, 1000, 2000]
    sandbox.scenario("Num", after_page=1, insert=10)
    rowset("Num", pageSize=1)
    inserted = sandbox.changes("Num")["inserted"]
    assert len(inserted) == 10
    assert all(int(k) % 1000 != 0 for k in inserted)
    positions, total = _pk_positions(rowset, "Num", inserted, "Id")
    assert sum(p < total - 10 for p in positions) >= 8


def test_bad_insert_keys_value(sandbox):
    with pytest.raises(SandboxError, match="insert_keys"):
        sandbox.create_de("Bad", size=1, params={"insert_keys": "middle"})
