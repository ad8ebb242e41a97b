"""Page-content faults: a 200 page that lies (empty mid-window, wrong count, too long)."""

from __future__ import annotations

import pytest
from api_sandbox.testing import SandboxError

from .test_sfmc_rowset import small_de
from .test_sfmc_soap import FIELD_PROPS, NS, call, deo_request, msg, rows_of


def walk(rowset, key="Small", size=2):
    """Follow links.next from page 1; returns the bodies."""
    bodies = [rowset(key, pageSize=size).json()]
    while "next" in bodies[-1]["links"] and len(bodies) < 20:
        bodies.append(rowset(path=bodies[-1]["links"]["next"]).json())
    return bodies


def ids(body):
    return [int(it["keys"]["id"]) for it in body.get("items", [])]


@pytest.mark.parametrize("empty_items", ["absent", "empty"])
def test_empty_page_mid_window_still_promises_more(sandbox, rowset, empty_items):
    small_de(sandbox)  # 7 rows: pages of 2 -> 1,2 | 3,4 | 5,6 | 7
    sandbox.add_faults(
        {"endpoint": "rowset", "action": "empty_page", "page": 2, "empty_items": empty_items}
    )
    bodies = walk(rowset)
    assert [ids(b) for b in bodies] == [[1, 2], [], [5, 6], [7]]
    faulted = bodies[1]
    assert faulted["count"] == 7
    assert "next" in faulted["links"]
    assert ("items" in faulted) == (empty_items == "empty")
    if empty_items == "empty":
        assert faulted["items"] == []
    assert sandbox.faults()[0]["fired"] == 1
    # the page itself is fine on a retry (times=1)
    assert ids(rowset(path=faulted["links"]["self"]).json()) == [3, 4]


def test_empty_page_on_last_page_adds_a_next_link(sandbox, rowset):
    small_de(sandbox)
    sandbox.add_faults({"endpoint": "rowset", "action": "empty_page", "page": 4})
    bodies = walk(rowset)
    assert [ids(b) for b in bodies] == [[1, 2], [3, 4], [5, 6], [], []]
    assert "next" not in bodies[-1]["links"]


@pytest.mark.parametrize("delta", [3, -2])
def test_count_jump_on_one_response(sandbox, rowset, delta):
    small_de(sandbox)
    sandbox.add_faults(
        {"endpoint": "rowset", "action": "count_jump", "page": 3, "count_delta": delta}
    )
    bodies = walk(rowset)
    assert [b["count"] for b in bodies] == [7, 7, 7 + delta, 7]
    assert [ids(b) for b in bodies] == [[1, 2], [3, 4], [5, 6], [7]]


def test_long_page_carries_the_next_pages_first_rows(sandbox, rowset):
    small_de(sandbox)
    sandbox.add_faults({"endpoint": "rowset", "action": "long_page", "page": 2, "extra_rows": 1})
    bodies = walk(rowset)
    assert [ids(b) for b in bodies] == [[1, 2], [3, 4, 5], [5, 6], [7]]
    assert bodies[1]["pageSize"] == 2


def test_long_last_page_repeats_earlier_rows(sandbox, rowset):
    small_de(sandbox)
    sandbox.add_faults({"endpoint": "rowset", "action": "long_page", "page": 4, "extra_rows": 2})
    assert [ids(b) for b in walk(rowset)] == [[1, 2], [3, 4], [5, 6], [7, 5, 6]]


def test_after_and_times_count_matching_pages_only(sandbox, rowset):
    small_de(sandbox)
    sandbox.add_faults(
        {"endpoint": "rowset", "action": "empty_page", "page": 2, "after": 1, "times": 1}
    )
    assert [ids(b) for b in walk(rowset)] == [[1, 2], [3, 4], [5, 6], [7]]
    assert [ids(b) for b in walk(rowset)] == [[1, 2], [], [5, 6], [7]]
    assert [ids(b) for b in walk(rowset)] == [[1, 2], [3, 4], [5, 6], [7]]
    assert sandbox.faults()[0]["matched"] == 3


def test_page_targets_transport_faults_too(sandbox, rowset):
    small_de(sandbox)
    sandbox.add_faults({"endpoint": "rowset", "status": 500, "page": 3})
    first = rowset("Small", pageSize=2).json()
    second = rowset(path=first["links"]["next"]).json()
    assert rowset(path=second["links"]["next"]).status_code == 500
    assert ids(rowset(path=second["links"]["next"]).json()) == [5, 6]


@pytest.mark.parametrize(
    "rule",
    [
        {"endpoint": "soap", "action": "empty_page"},
        {"endpoint": "soap_rows", "action": "count_jump", "count_delta": 1},
        {"endpoint": "soap_rows", "status": 500, "page": 2},
        {"endpoint": "rowset", "action": "count_jump"},
        {"endpoint": "rowset", "action": "long_page"},
        {"endpoint": "rowset", "action": "empty_page", "empty_items": "null"},
        {"endpoint": "token", "status": 500, "page": 1},
        {"endpoint": "rowset", "status": 500, "page": 0},
    ],
)
def test_invalid_content_rules_are_400(sandbox, rule):
    with pytest.raises(SandboxError, match="400"):
        sandbox.add_faults(rule)


def soap_walk(sandbox, http, token, batch=2):
    """Retrieve Small by SOAP, following MoreDataAvailable; returns (status, ids) per batch."""
    out = []
    _, root = call(sandbox, http, token, deo_request(["Id"], name="Small", batch=batch))
    while True:
        status = msg(root).findtext("p:OverallStatus", namespaces=NS)
        out.append((status, [int(r["Id"]) for r in rows_of(root)]))
        if status != "MoreDataAvailable" or len(out) > 10:
            return out
        request_id = msg(root).findtext("p:RequestID", namespaces=NS)
        _, root = call(sandbox, http, token, deo_request(["Id"], name="Small", cont=request_id))


def test_soap_empty_batch_still_more_data_available(sandbox, http, mint):
    small_de(sandbox)
    sandbox.add_faults({"endpoint": "soap_rows", "action": "empty_page", "page": 2})
    batches = soap_walk(sandbox, http, mint())
    assert batches == [
        ("MoreDataAvailable", [1, 2]),
        ("MoreDataAvailable", []),
        ("MoreDataAvailable", [3, 4]),
        ("MoreDataAvailable", [5, 6]),
        ("OK", [7]),
    ]


def test_soap_long_batch_repeats_the_next_rows(sandbox, http, mint):
    small_de(sandbox)
    sandbox.add_faults({"endpoint": "soap_rows", "action": "long_page", "page": 1, "extra_rows": 1})
    batches = soap_walk(sandbox, http, mint())
    assert [ids for _, ids in batches] == [[1, 2, 3], [3, 4], [5, 6], [7]]
    assert sandbox.state()["counters"]["faults_fired"] == {"soap_rows": 1}


def test_soap_content_faults_leave_field_retrieves_alone(sandbox, http, mint):
    sandbox.add_faults({"endpoint": "soap_rows", "action": "empty_page", "times": None})
    field_req = (
        "<RetrieveRequest><ObjectType>DataExtensionField</ObjectType>"
        f"{FIELD_PROPS}</RetrieveRequest>"
    )
    _, root = call(sandbox, http, mint(), field_req)
    assert msg(root).findtext("p:OverallStatus", namespaces=NS) == "OK"
    assert msg(root).findall("p:Results", NS)
