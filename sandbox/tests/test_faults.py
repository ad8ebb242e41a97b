"""Fault rules: statuses and bodies per API, drop, delay, latency, after/times."""

from __future__ import annotations

import time

import pytest
import requests

CREDS = {
    "grant_type": "client_credentials",
    "client_id": "sandbox-client-id",
    "client_secret": "sandbox-client-secret",
}
HEADERS = {"X-PARTNER-NAME": "sandboxpartner", "X-REQUEST-TOKEN": "sandbox-api-key"}
USERS = {"users": [{"identifiers": {"uuid": "1"}, "attributes": {"name": "a"}}]}


def token_call(sandbox, http):
    return http.post(f"{sandbox.sfmc_url}/v2/token", json=CREDS, timeout=10)


def upsert(sandbox, http, timeout=10):
    return http.post(
        f"{sandbox.insider_url}/api/user/v1/upsert", json=USERS, headers=HEADERS, timeout=timeout
    )


def test_rowset_429_with_retry_after_then_recovers(sandbox, rowset, mint):
    token = mint()
    sandbox.add_faults({"endpoint": "rowset", "status": 429, "retry_after": 3, "times": 2})
    first = rowset(token=token)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "3"
    assert first.json()["errorcode"] == 50100
    assert first.json()["retryAfter"] == 3
    assert rowset(token=token).status_code == 429
    assert rowset(token=token, pageSize=1).status_code == 200
    assert sandbox.faults()[0]["fired"] == 2


def test_rowset_50200_without_retry_after(sandbox, rowset, mint):
    token = mint()
    sandbox.add_faults({"endpoint": "rowset", "status": 429, "errorcode": 50200})
    resp = rowset(token=token)
    assert resp.status_code == 429
    assert "Retry-After" not in resp.headers
    assert resp.json()["message"] == "Your requests are temporarily blocked."


def test_after_skips_first_matches(sandbox, rowset, mint):
    token = mint()
    sandbox.add_faults({"endpoint": "rowset", "status": 503, "after": 2, "times": None})
    codes = [rowset(token=token, pageSize=1).status_code for _ in range(4)]
    assert codes == [200, 200, 503, 503]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_without_json_body(sandbox, http, status):
    sandbox.add_faults({"endpoint": "token", "status": status})
    resp = token_call(sandbox, http)
    assert resp.status_code == status
    assert not resp.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):  # noqa: PT011 - any JSON decode error
        resp.json()
    assert token_call(sandbox, http).status_code == 200


def test_insider_500_has_its_json_body_but_gateway_errors_do_not(sandbox, http):
    sandbox.add_faults(
        {"endpoint": "upsert", "status": 500}, {"endpoint": "upsert", "status": 502, "after": 1}
    )
    first = upsert(sandbox, http)
    assert (first.status_code, first.json()) == (
        500,
        {
            "success": False,
            "message": "The request processing has failed because of an unknown error.",
        },
    )
    second = upsert(sandbox, http)
    assert second.status_code == 502
    assert second.headers["Content-Type"] == "text/html"
    assert upsert(sandbox, http).status_code == 200


def test_insider_429_and_403_limit(sandbox, http):
    sandbox.add_faults(
        {"endpoint": "upsert", "status": 429, "retry_after": 1},
        {"endpoint": "upsert", "status": 403, "after": 1},
    )
    first = upsert(sandbox, http)
    assert (first.status_code, first.json()) == (429, {"error": "rejected: too many requests"})
    assert first.headers["Retry-After"] == "1"
    second = upsert(sandbox, http)
    assert second.status_code == 403
    assert second.json()["message"] == "Request Limit Exceeded"
    assert upsert(sandbox, http).status_code == 200
    log = sandbox.requests()
    assert [(r["status"], r["fault"], r["users"]) for r in log] == [
        (429, True, 1),
        (403, True, 1),
        (200, False, 1),
    ]


def test_drop_connection(sandbox, http):
    sandbox.add_faults({"endpoint": "upsert", "action": "drop"})
    with pytest.raises(requests.ConnectionError):
        upsert(sandbox, http)
    assert upsert(sandbox, http).status_code == 200
    assert sandbox.profiles()[0]["identifiers"] == {"uuid": "1"}


def test_delay_exceeds_client_timeout(sandbox, http):
    sandbox.add_faults({"endpoint": "token", "action": "delay", "delay_seconds": 1.5})
    with pytest.raises(requests.Timeout):
        http.post(f"{sandbox.sfmc_url}/v2/token", json=CREDS, timeout=0.5)
    assert token_call(sandbox, http).status_code == 200


def test_latency_switch(sandbox, http):
    sandbox.configure(latency={"upsert": 0.3})
    started = time.perf_counter()
    assert upsert(sandbox, http).status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_soap_fault_rule(sandbox, http, mint):
    token = mint()
    sandbox.add_faults({"endpoint": "soap", "status": 500})
    resp = http.post(
        f"{sandbox.sfmc_url}/Service.asmx",
        data=f"<x><fueloauth>{token}</fueloauth></x>",
        timeout=10,
    )
    assert resp.status_code == 500
    assert b"Fault" in resp.content


def test_wildcard_and_config_validation(sandbox, http):
    sandbox.add_faults({"endpoint": "*", "status": 500, "times": 1})
    assert token_call(sandbox, http).status_code == 500
    resp = http.post(f"{sandbox.sfmc_url}/_sandbox/faults", json=[{"endpoint": "nope"}], timeout=10)
    assert resp.status_code == 400
    resp = http.post(f"{sandbox.sfmc_url}/_sandbox/config", json={"nope": 1}, timeout=10)
    assert resp.status_code == 400
    sandbox.clear_faults()
    assert sandbox.faults() == []


def test_a_delayed_request_does_not_apply_after_a_reset(sandbox, http):
    # A test that gives up on a slow request must not leak it into the next test's data.
    sandbox.add_faults({"endpoint": "upsert", "action": "delay", "delay_seconds": 1.5})
    with pytest.raises(requests.exceptions.RequestException):
        upsert(sandbox, http, timeout=0.3)
    sandbox.reset()
    time.sleep(2.0)  # the server-side handler wakes up after the reset
    assert sandbox.profiles() == []
    assert sandbox.requests() == []
