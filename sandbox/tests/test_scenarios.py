"""Live changes: admin mutate and the after-page-N scenario."""

from __future__ import annotations


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
