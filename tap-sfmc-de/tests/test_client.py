"""The single error policy: what is retried, how long we wait, what is fatal."""

import datetime as dt
import email.utils
import math

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from tap_sfmc_de.auth import TokenManager
from tap_sfmc_de.client import HttpClient, build_query, classify
from tap_sfmc_de.errors import RetriesExhaustedError, SfmcApiError
from tap_sfmc_de.retries import RetryPolicy, parse_retry_after
from tap_sfmc_de.rowset import RowsetClient
from tap_sfmc_de.settings import Settings
from tap_sfmc_de_testkit import AUTH, REST, token_json

URL = f"{REST}data/v1/customobjectdata/key/Customers/rowset?$page=1&$pageSize=1"
OK = {"json": {"count": 0, "links": {"self": "x"}}, "status_code": 200}


def make_http(max_retries=3, base=1.0, cap=8.0, retry_after_cap=300.0, budget=900.0):
    waits = []
    policy = RetryPolicy(max_retries, base, cap, 5, retry_after_cap, budget)
    http = HttpClient(policy, sleep=waits.append)
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
    # nominal 4s then 8s, jitter in [0.5, 1] (the target's rule)
    assert 2 <= waits[0] <= 4
    assert 4 <= waits[1] <= 8


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
    assert waits[0] < 1.5 <= waits[2]  # exponential: 1, 2, 4, 8 (x[0.5, 1] jitter)


def test_backoff_never_exceeds_backoff_max_seconds():
    http, _ = make_http(base=1.0, cap=3.0)
    waits = [http.policy.backoff(10) for _ in range(200)]
    assert all(1.5 <= wait <= 3.0 for wait in waits)


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


def test_a_huge_retry_after_is_capped(requests_mock):
    http, waits = make_http(retry_after_cap=300)
    requests_mock.get(URL, [{"status_code": 429, "headers": {"Retry-After": "3000"}}, OK])
    http.send("GET", URL, kind="rest", prepare=dict)
    assert waits == [300]


@pytest.mark.parametrize(
    "throttled",
    [
        {"json": {"errorcode": 50100, "retryAfter": -30}},
        {"text": '{"errorcode": 50100, "retryAfter": NaN}'},
        {"text": '{"errorcode": 50100, "retryAfter": 1e999}'},
        {"headers": {"Retry-After": "-5"}},
        {"headers": {"Retry-After": "nan"}},
        {"headers": {"Retry-After": "soon"}},
        {"headers": {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}},
    ],
    ids=["negative-body", "nan-body", "inf-body", "negative", "nan", "garbage", "past-date"],
)
def test_malformed_retry_after_never_crashes_and_waits_a_sane_time(requests_mock, throttled):
    http, waits = make_http(base=1.0, cap=8.0, retry_after_cap=300)
    requests_mock.get(URL, [{"status_code": 429, **throttled}, OK])
    http.send("GET", URL, kind="rest", prepare=dict)
    assert len(waits) == 1
    assert 0 <= waits[0] <= 300
    assert math.isfinite(waits[0])


def test_http_date_retry_after_is_read_against_the_server_clock(requests_mock):
    http, waits = make_http()
    server_now = dt.datetime(2024, 5, 8, 21, 0, 0, tzinfo=dt.UTC)
    headers = {
        "Date": email.utils.format_datetime(server_now, usegmt=True),
        "Retry-After": email.utils.format_datetime(
            server_now + dt.timedelta(seconds=42), usegmt=True
        ),
    }
    requests_mock.get(URL, [{"status_code": 429, "headers": headers}, OK])
    http.send("GET", URL, kind="rest", prepare=dict)
    assert 42 <= waits[0] < 42.2


def test_the_retry_budget_bounds_the_total_wait_of_one_request(requests_mock):
    http, waits = make_http(max_retries=50, retry_after_cap=200, budget=500)
    mock = requests_mock.get(URL, status_code=429, headers={"Retry-After": "200"})
    with pytest.raises(RetriesExhaustedError, match="would exceed retry_budget_seconds 500"):
        http.send("GET", URL, kind="rest", prepare=dict)
    assert waits == [200, 200]
    assert mock.call_count == 3


# --- the one Retry-After rule -------------------------------------------------------------
NOW = dt.datetime(2024, 5, 8, 21, 0, 0, tzinfo=dt.UTC)
ANYTHING = (
    st.text(st.characters(codec=None, exclude_categories=()))
    | st.floats()
    | st.integers()
    | st.integers(min_value=10**300)
    | st.booleans()
    | st.none()
    | st.lists(st.integers(), max_size=2)
    | st.from_regex(r"\s*-?[0-9]{1,400}(\.[0-9]*)?\s*", fullmatch=True)
    | st.datetimes(timezones=st.just(dt.UTC)).map(
        lambda d: email.utils.format_datetime(d, usegmt=True)
    )
)


@given(value=ANYTHING)
@settings(max_examples=200)
def test_retry_after_parses_to_a_non_negative_number_or_nothing(value):
    seconds = parse_retry_after(value, NOW)
    assert seconds is None or (isinstance(seconds, float) and seconds >= 0)
    policy = RetryPolicy(5, 2.0, 60.0, 5, 300.0, 900.0)
    wait = policy.wait(0, seconds)
    assert 0 <= wait <= 300
    assert math.isfinite(wait)


@given(delay=st.integers(0, 10**7))
@settings(max_examples=100)
def test_retry_after_seconds_and_dates_agree(delay):
    as_date = email.utils.format_datetime(NOW + dt.timedelta(seconds=delay), usegmt=True)
    assert parse_retry_after(str(delay), NOW) == delay
    assert parse_retry_after(f" {delay} ", NOW) == delay
    assert parse_retry_after(delay, NOW) == delay
    assert parse_retry_after(as_date, NOW) == delay


@given(past=st.integers(1, 10**9))
@settings(max_examples=50)
def test_a_date_in_the_past_means_now(past):
    assert (
        parse_retry_after(email.utils.format_datetime(NOW - dt.timedelta(seconds=past)), NOW) == 0
    )
