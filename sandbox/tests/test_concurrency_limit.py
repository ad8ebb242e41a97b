"""Rowset requests in flight: served concurrently, measured, and refused above a limit."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from api_sandbox.testing import SandboxError

IN_FLIGHT = 4


def _concurrent_pages(sandbox, mint, n):
    """``n`` rowset requests sent at the same moment, each on its own connection."""
    token = mint()
    url = f"{sandbox.sfmc_url}/data/v1/customobjectdata/key/Customers/rowset"
    start = threading.Barrier(n)

    def one(page):
        with requests.Session() as session:
            start.wait()
            return session.get(
                url,
                params={"$page": page, "$pageSize": 10},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(1, n + 1)))


def test_requests_are_served_concurrently_under_latency(sandbox, mint):
    sandbox.configure(latency={"rowset": 0.3})
    replies = _concurrent_pages(sandbox, mint, IN_FLIGHT)
    assert [r.status_code for r in replies] == [200] * IN_FLIGHT
    # Latency sleeps in each request's own thread: they overlapped, none waited for another.
    assert 1 < sandbox.rowset_in_flight_max() <= IN_FLIGHT
    assert sandbox.rowset_concurrency_blocked() == 0


def test_above_the_limit_sfmc_answers_50200_without_retry_after(sandbox, mint):
    sandbox.configure(latency={"rowset": 0.3}, rowset_concurrency_limit=2)
    replies = _concurrent_pages(sandbox, mint, IN_FLIGHT)
    blocked = [r for r in replies if r.status_code == 429]
    assert blocked, "the requests did not overlap"
    for reply in blocked:
        assert reply.json()["errorcode"] == 50200
        assert reply.json()["message"] == "Your requests are temporarily blocked."
        assert "Retry-After" not in reply.headers
    assert sandbox.rowset_in_flight_max() <= 2
    assert sandbox.rowset_concurrency_blocked() == len(blocked)
    # A slot is free again once its reply arrived: sequential requests always pass.
    after = _concurrent_pages(sandbox, mint, 1)
    assert after[0].status_code == 200


def test_counter_reset_restarts_the_maximum(sandbox, mint):
    sandbox.configure(latency={"rowset": 0.2})
    _concurrent_pages(sandbox, mint, 2)
    assert sandbox.rowset_in_flight_max() >= 1
    sandbox.reset_counters()
    assert sandbox.rowset_in_flight_max() == 0
    assert sandbox.rowset_concurrency_blocked() == 0


def test_limit_must_be_positive(sandbox):
    with pytest.raises(SandboxError, match="at least 1"):
        sandbox.configure(rowset_concurrency_limit=0)
