"""Row-read counters: the tap's request budget is asserted through these."""

from __future__ import annotations

import time

import pytest
import requests

from .test_sfmc_soap import FIELD_PROPS, NS, call, deo_request, msg


def test_every_row_read_counts_and_other_calls_do_not(sandbox, rowset, http, mint):
    token = mint()
    first = rowset(token=token, pageSize=2000).json()
    rowset(token=token, path=first["links"]["next"])
    field_req = (
        "<RetrieveRequest><ObjectType>DataExtensionField</ObjectType>"
        f"{FIELD_PROPS}</RetrieveRequest>"
    )
    call(sandbox, http, token, field_req)
    _, root = call(sandbox, http, token, deo_request(["SubscriberKey"], batch=3000))
    assert msg(root).findtext("p:OverallStatus", namespaces=NS) == "MoreDataAvailable"
    request_id = msg(root).findtext("p:RequestID", namespaces=NS)
    call(sandbox, http, token, deo_request(["SubscriberKey"], cont=request_id))
    assert sandbox.rowset_requests() == {"rest_key": 1, "rest_token": 1, "soap": 2, "total": 4}
    counters = sandbox.counters()
    assert counters["soap_field_retrieves"] == 1
    assert counters["requests"]["token"] == 1
    assert sandbox.rowset_request_count() == 4


def test_faulted_dropped_and_delayed_reads_count_too(sandbox, rowset, mint):
    token = mint()
    sandbox.add_faults(
        {"endpoint": "rowset", "status": 429, "times": 1},
        {"endpoint": "rowset", "action": "drop", "after": 1, "times": 1},
    )
    assert rowset(token=token).status_code == 429
    with pytest.raises(requests.ConnectionError):
        rowset(token=token)
    assert rowset(token=token).status_code == 200
    assert sandbox.rowset_request_count() == 3


def test_reset_counters_keeps_data_and_switches(sandbox, rowset):
    sandbox.configure(default_order="random-stable")
    rowset(pageSize=5)
    assert sandbox.rowset_request_count() == 1
    counters = sandbox.reset_counters()
    assert counters["rowset_requests"]["total"] == 0
    assert counters["requests"] == {}
    assert sandbox.state()["config"]["default_order"] == "random-stable"
    assert rowset(pageSize=5).json()["count"] == 5000
    assert sandbox.rowset_request_count() == 1


def test_soap_rows_alias_targets_row_retrieves_only(sandbox, http, mint):
    token = mint()
    sandbox.add_faults({"endpoint": "soap_rows", "status": 500, "times": None})
    field_req = (
        "<RetrieveRequest><ObjectType>DataExtensionField</ObjectType>"
        f"{FIELD_PROPS}</RetrieveRequest>"
    )
    assert call(sandbox, http, token, field_req)[0].status_code == 200
    resp, _ = call(sandbox, http, token, deo_request(["SubscriberKey"], batch=10))
    assert resp.status_code == 500
    assert sandbox.rowset_requests()["soap"] == 1


def test_steady_latency_per_row_read(sandbox, rowset, http, mint):
    """``latency`` delays every row read (a lower bound: a sleep never ends early)."""
    token = mint()
    sandbox.configure(latency={"rowset": 0.3, "soap_rows": 0.3})
    started = time.monotonic()
    first = rowset(token=token, pageSize=1).json()
    rowset(token=token, path=first["links"]["next"])
    call(sandbox, http, token, deo_request(["SubscriberKey"], batch=1))
    assert time.monotonic() - started >= 0.9
