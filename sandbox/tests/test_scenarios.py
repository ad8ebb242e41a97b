"""Live changes: admin mutate and the after-page-N scenario."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def test_mutate_records_changes_and_stamps_modified(sandbox, rowset):
    before = {r["SubscriberKey"]: r for r in sandbox.rows()}
    change = sandbox.mutate("Customers", update=3, insert=2, delete=1)
    assert len(change["updated"]) == 3
    assert len(change["inserted"]) == 2
    assert len(change["deleted"]) == 1
    after = {r["SubscriberKey"]: r for r in sandbox.rows()}
    assert len(after) == 5001
    for key in change["updated"] + change["inserted"]:
        assert after[key]["ModifiedDate"] == change["at"]
    assert change["deleted"][0] not in after
    assert set(change["inserted"]).isdisjoint(before)
    changes = sandbox.changes("Customers")
    assert changes["updated"] == change["updated"]
    # the filter sees the new ModifiedDate
    body = rowset(filter=f"ModifiedDate gte '{change['at']}'").json()
    assert body["count"] == 5
    # "now" is the SFMC wall clock: UTC-6 all year, on the wire without an offset
    stamped = datetime.fromisoformat(change["at"])
    assert stamped.utcoffset() == timedelta(hours=-6)
    assert abs(datetime.now(UTC) - stamped) < timedelta(seconds=10)
    wire = body["items"][0]["values"]["modifieddate"]
    naive = datetime.strptime(wire, "%m/%d/%Y %I:%M:%S %p")  # noqa: DTZ007 - naive on the wire
    assert naive == stamped.replace(tzinfo=None)


def test_mutation_is_deterministic(sandbox):
    first = sandbox.mutate("Customers", update=5, delete=2)
    sandbox.reset()
    second = sandbox.mutate("Customers", update=5, delete=2)
    assert first["updated"] == second["updated"]
    assert first["deleted"] == second["deleted"]


def test_scenario_fires_after_page(sandbox, rowset):
    sandbox.scenario("Customers", after_page=1, update=10, insert=5, delete=20)
    first = rowset(pageSize=2500).json()
    assert first["count"] == 5000
    second = rowset(path=first["links"]["next"]).json()
    assert second["count"] == 4985
    changes = sandbox.changes("Customers")
    assert changes["changes"][0]["trigger"].startswith("scenario")
    assert len(changes["inserted"]) == 5
    state = sandbox.state()
    assert state["scenarios"][0]["fired"] is True
    assert state["counters"]["pages_served"]["Customers"] == 2
    # fires once only
    rowset(pageSize=10)
    assert len(sandbox.changes("Customers")["changes"]) == 1


def test_de_without_pk_or_modified_date(sandbox):
    sandbox.create_de(
        "Plain", fields=[{"name": "A"}, {"name": "N", "field_type": "Number"}], size=5
    )
    change = sandbox.mutate("Plain", update=1, insert=1, delete=1)
    assert all("_rowid" in k for k in change["updated"] + change["inserted"])


def test_inserts_skip_taken_keys(sandbox):
    fields = [
        {"name": "Id", "field_type": "Number", "is_primary_key": True},
        {"name": "ModifiedDate", "field_type": "Date"},
    ]
    sandbox.create_de(
        "Ids", fields=fields, rows=[{"Id": i} for i in range(5)] + [{"Id": 5}, {"Id": 6}]
    )
    change = sandbox.mutate("Ids", insert=3)
    assert len(set(change["inserted"])) == 3
    assert not {"0", "1", "2", "3", "4", "5", "6"} & set(change["inserted"])
    assert len(sandbox.rows("Ids")) == 10


def test_updates_keep_identity_columns(sandbox):
    before = {r["SubscriberKey"]: r for r in sandbox.rows()}
    change = sandbox.mutate("Customers", update=50)
    after = {r["SubscriberKey"]: r for r in sandbox.rows()}
    for key in change["updated"]:
        for column in ("EmailAddress", "Phone", "FirstName", "LastName", "BirthDate"):
            assert after[key][column] == before[key][column]
    changed = sum(
        after[k]["LoyaltyPoints"] != before[k]["LoyaltyPoints"] for k in change["updated"]
    )
    assert changed > 40
