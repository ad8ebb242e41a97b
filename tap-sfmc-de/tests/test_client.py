"""The single error policy: what is retried, how long we wait, what is fatal."""

import pytest
import requests
from tap_sfmc_de.auth import TokenManager
from tap_sfmc_de.client import HttpClient, build_query, classify
from tap_sfmc_de.errors import RetriesExhaustedError, SfmcApiError
from tap_sfmc_de.rowset import RowsetClient
from tap_sfmc_de.settings import RetryPolicy, Settings
from tap_sfmc_de_testkit import AUTH, REST, token_json

URL = f"{REST}data/v1/customobjectdata/key/Customers/rowset?$page=1&$pageSize=1"
OK = {"json": {"count": 0, "links": {"self": "x"}}, "status_code": 200}


def make_http(max_retries=3, base=1.0, cap=8.0):
    waits = []
    http = HttpClient(RetryPolicy(max_retries, base, cap, 5), sleep=waits.append)
    return http, waits


def make_rowset(config, http):
    settings = Settings.from_config(config)
    return RowsetClient(http, TokenManager(settings, http), "Customers")


def test_429_honours_retry_after(requests_mock):
    http, waits = make_http()
    requests_mock.get(
        URL,
        [
            {"status_code": 429, "headers": {"Retry-After": "7"}, "json": {"errorcode": 50100}},
            OK,
        ],
    )
    http.send("GET", URL, kind="rest", prepare=dict)
    assert len(waits) == 1
    assert 7 <= waits[0] < 7.2


def test_429_retry_after_in_body(requests_mock):
    http, waits = make_http()
    requests_mock.get(
        URL, [{"status_code": 429, "json": {"errorcode": 50100, "retryAfter": 3}}, OK]
    )
    http.send("GET", URL, kind="rest", prepare=dict)
    assert 3 <= waits[0] < 3.2


def test_50200_backs_off_harder_than_plain_429(requests_mock):
    http, waits = make_http(base=1.0, cap=100)
    blocked = {"status_code": 429, "json": {"errorcode": 50200, "message": "blocked"}}
    requests_mock.get(URL, [blocked, blocked, OK])
    http.send("GET", URL, kind="rest", prepare=dict)
    # nominal 4s then 8s, jitter in [0.5, 1.5)
    assert 2 <= waits[0] < 6
    assert 4 <= waits[1] < 12


def test_5xx_timeouts_and_dropped_connections_are_retried_with_growing_backoff(requests_mock):
    http, waits = make_http(max_retries=5, base=1.0, cap=100)
    requests_mock.get(
        URL,
        [
            {"status_code": 500},
            {"exc": requests.exceptions.ConnectTimeout},
            {"exc": requests.exceptions.ConnectionError},
            {"status_code": 200, "text": '{"count": 1, "ite'},  # truncated body
            {"status_code": 503},
            OK,
        ],
    )
    http.send("GET", URL, kind="rest", prepare=dict)
    assert len(waits) == 5
    assert waits[0] < 1.5 <= waits[2]  # exponential: 1, 2, 4, 8 (+-50 % jitter)


def test_backoff_is_capped():
    http, _ = make_http(base=1.0, cap=3.0)
    assert all(http.backoff(10) < 4.5 for _ in range(50))


def test_retries_exhausted_message_is_clear(requests_mock):
    http, waits = make_http(max_retries=2)
    requests_mock.get(URL, status_code=502)
    with pytest.raises(RetriesExhaustedError, match="still failing after 3 attempts"):
        http.send("GET", URL, kind="rest", prepare=dict)
    assert len(waits) == 2


def test_other_4xx_fail_fast(requests_mock):
    http, waits = make_http()
    requests_mock.get(URL, status_code=400, json={"message": "bad filter", "errorcode": 10001})
    with pytest.raises(SfmcApiError, match="HTTP 400: bad filter"):
        http.send("GET", URL, kind="rest", prepare=dict)
    assert waits == []


def test_rest_401_remints_once_then_fails(requests_mock, config):
    http, _ = make_http()
    token = requests_mock.post(f"{AUTH}v2/token", json=token_json())
    requests_mock.get(
        URL, [{"status_code": 401, "json": {"message": "Not Authorized", "errorcode": 0}}, OK]
    )
    rowset = make_rowset(config, http)
    assert rowset.fetch(page=1, page_size=1).count == 0
    assert token.call_count == 2
    requests_mock.get(URL, status_code=401, json={"message": "Not Authorized", "errorcode": 0})
    with pytest.raises(SfmcApiError, match="401 Not Authorized after a fresh token"):
        rowset.fetch(page=1, page_size=1)


def test_403_names_the_missing_scope(requests_mock, config):
    http, _ = make_http()
    requests_mock.post(f"{AUTH}v2/token", json=token_json())
    requests_mock.get(
        URL, status_code=403, json={"message": "Insufficient privileges", "errorcode": 20000}
    )
    with pytest.raises(SfmcApiError) as info:
        make_rowset(config, http).fetch(page=1, page_size=1)
    assert "data_extensions_read" in str(info.value)
    assert "Installed Packages" in str(info.value)
    assert "API Integration" in str(info.value)


def test_404_says_use_the_external_key(requests_mock, config):
    http, _ = make_http()
    requests_mock.post(f"{AUTH}v2/token", json=token_json())
    requests_mock.get(URL, status_code=404, json={"message": "Not Found", "errorcode": 30003})
    with pytest.raises(
        SfmcApiError, match=r"use the external key \(CustomerKey\), not the DE name"
    ):
        make_rowset(config, http).fetch(page=1, page_size=1)


def test_soap_token_expired_is_a_remint_other_faults_retry():
    fault = (
        "<soap:Envelope><soap:Body><soap:Fault><faultcode>q0:Security</faultcode>"
        "<faultstring>Token Expired</faultstring></soap:Fault></soap:Body></soap:Envelope>"
    )
    response = requests.Response()
    response.status_code = 500
    response._content = fault.encode()
    assert classify(response, "soap").action == "remint"
    response._content = fault.replace("Token Expired", "Server busy").encode()
    assert classify(response, "soap").action == "retry"


def test_query_keeps_dollar_and_encodes_spaces():
    query = build_query({"$page": 1, "$filter": "ModifiedDate ge '5/8/2024 3:04:05 PM'"})
    assert query == "$page=1&$filter=ModifiedDate%20ge%20%275%2F8%2F2024%203%3A04%3A05%20PM%27"
