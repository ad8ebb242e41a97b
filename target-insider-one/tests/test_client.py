import datetime as dt
import json
import math

import pytest
import requests
from target_insider_one.client import (
    InsiderAuthError,
    InsiderBadRequestError,
    InsiderClient,
    InsiderConfigError,
    InsiderRequestFailedError,
    parse_upsert_response,
)
from target_insider_one.retries import RetryPolicy, parse_retry_after
from target_insider_one.settlement import Undelivered
from target_insider_one.summary import RunStats

from .conftest import UPSERT_URL

BODY = b'{"skip_hook":false,"users":[{"identifiers":{"uuid":"a"},"attributes":{"name":"A"}}]}'
OK = {"json": {"data": {"successful": {"count": 1}, "fail": {}}}, "status_code": 200}


POLICY = {
    "request_timeout": 5,
    "max_retries": 3,
    "backoff_base_seconds": 1.0,
    "backoff_max_seconds": 8.0,
    "max_retry_after_seconds": 300,
    "retry_budget_seconds": math.inf,
}


def client(sleeps: list[float] | None = None, **overrides) -> InsiderClient:
    policy = {**POLICY, **{k: overrides.pop(k) for k in list(overrides) if k in POLICY}}
    options = {
        "upsert_url": UPSERT_URL,
        "partner_name": "acmeshop",
        "api_key": "super-secret-key-123",
        "policy": RetryPolicy(**policy),
        "stats": RunStats(),
        "sleep": (sleeps.append if sleeps is not None else lambda _s: None),
    }
    options.update(overrides)
    return InsiderClient(**options)


def test_success_sends_headers_and_exact_body(requests_mock):
    requests_mock.post(UPSERT_URL, **OK)
    c = client()
    response = c.upsert(BODY)
    assert response.successful == 1
    assert response.fail_count == 0
    request = requests_mock.last_request
    assert request.body == BODY
    assert request.headers["X-PARTNER-NAME"] == "acmeshop"
    assert request.headers["X-REQUEST-TOKEN"] == "super-secret-key-123"
    assert request.headers["Content-Type"] == "application/json"
    assert "super-secret" not in repr(c)


def test_partial_failure_is_parsed():
    text = json.dumps(
        {
            "data": {
                "successful": {"count": 2},
                "fail": {
                    "count": 1,
                    "errors": {
                        "users.1.identifiers.*.regexp(^\\+[1-9]\\d{6,14}$)": [
                            "user has an invalid phone number: 98765432"
                        ]
                    },
                },
            }
        }
    )
    parsed = parse_upsert_response(200, text)
    assert parsed.successful == 2
    assert parsed.fail_count == 1
    assert list(parsed.errors) == ["users.1.identifiers.*.regexp(^\\+[1-9]\\d{6,14}$)"]
    assert parse_upsert_response(200, "") is None
    assert parse_upsert_response(200, "<html>") is None
    assert parse_upsert_response(200, '{"ok": true}') is None
    nothing = parse_upsert_response(
        200, '{"data":{"successful":{},"fail":{"count":1,"errors":{}}}}'
    )
    assert nothing.successful is None
    assert nothing.fail_count == 1


@pytest.mark.parametrize("answer", [{"text": "<html>Welcome</html>"}, {"json": {"ok": True}}])
def test_2xx_without_upsert_result_is_not_success(requests_mock, answer):
    # e.g. api_base_url pointing at a proxy or web page: nothing proves the users were stored.
    requests_mock.post(UPSERT_URL, status_code=200, **answer)
    with pytest.raises(InsiderRequestFailedError, match="api_base_url") as info:
        client().upsert(BODY)
    assert info.value.status == 200
    assert requests_mock.call_count == 1


def test_429_honours_retry_after(requests_mock):
    requests_mock.post(
        UPSERT_URL,
        [
            {
                "status_code": 429,
                "json": {"error": "rejected: too many requests"},
                "headers": {"Retry-After": "7"},
            },
            {"status_code": 429, "json": {"error": "rejected: too many requests"}},
            OK,
        ],
    )
    sleeps: list[float] = []
    c = client(sleeps)
    assert c.upsert(BODY).successful == 1
    assert sleeps[0] >= 7
    assert 0.5 <= sleeps[1] <= 2.0  # exponential step 2 with jitter: [1, 2]
    assert c.stats.counts["requests_sent"] == 3
    assert c.stats.counts["retries"] == 2


def test_retry_after_http_date():
    now = dt.datetime.fromtimestamp(1445412470.0, dt.UTC)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 10
    assert parse_retry_after("junk", now) is None
    assert RetryPolicy(**POLICY).wait(0, parse_retry_after("100000", now)) == 300
    assert parse_retry_after(None, now) is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retried(requests_mock, status):
    requests_mock.post(UPSERT_URL, [{"status_code": status, "text": "<html>bad gateway"}, OK])
    assert client().upsert(BODY).successful == 1
    assert requests_mock.call_count == 2


def test_403_request_limit_exceeded_is_retried(requests_mock):
    requests_mock.post(
        UPSERT_URL,
        [{"status_code": 403, "json": {"success": False, "message": "Request Limit Exceeded"}}, OK],
    )
    assert client().upsert(BODY).successful == 1


def test_dropped_connection_and_timeout_are_retried(requests_mock):
    requests_mock.post(
        UPSERT_URL,
        [
            {"exc": requests.exceptions.ConnectionError("reset by peer")},
            {"exc": requests.exceptions.ReadTimeout("slow")},
            {"exc": requests.exceptions.ChunkedEncodingError("cut")},
            OK,
        ],
    )
    assert client().upsert(BODY).successful == 1
    assert requests_mock.call_count == 4


def test_backoff_grows_exponentially_with_cap(requests_mock):
    requests_mock.post(UPSERT_URL, status_code=503)
    sleeps: list[float] = []
    with pytest.raises(InsiderRequestFailedError) as info:
        client(sleeps, max_retries=5, backoff_base_seconds=1, backoff_max_seconds=4).upsert(BODY)
    assert info.value.attempts == 6
    assert info.value.status == 503
    assert requests_mock.call_count == 6
    caps = [1, 2, 4, 4, 4]
    assert len(sleeps) == 5
    for delay, cap in zip(sleeps, caps, strict=True):
        assert cap / 2 <= delay <= cap


def test_access_denied_fails_fast_with_credentials_hint(requests_mock):
    requests_mock.post(
        UPSERT_URL,
        status_code=403,
        json={"success": False, "message": "Access Denied. You do not have sufficient access."},
    )
    with pytest.raises(InsiderAuthError) as info:
        client().upsert(BODY)
    assert requests_mock.call_count == 1
    message = info.value.message
    assert "partner_name" in message
    assert "api_key" in message
    assert "Unified Customer Database (UCD)" in message
    assert "acmeshop" in message
    assert "super-secret" not in message


def test_400_partner_is_invalid_is_auth_error(requests_mock):
    requests_mock.post(
        UPSERT_URL, status_code=400, json={"success": False, "message": "Partner is invalid."}
    )
    with pytest.raises(InsiderAuthError, match="partner_name"):
        client().upsert(BODY)
    assert requests_mock.call_count == 1


def test_401_is_auth_error(requests_mock):
    requests_mock.post(
        UPSERT_URL, status_code=401, json={"message": "Partner token authentication failed."}
    )
    with pytest.raises(InsiderAuthError):
        client().upsert(BODY)


def test_400_not_retried_and_size_detected(requests_mock):
    requests_mock.post(
        UPSERT_URL, status_code=400, json={"error": "users must be defined: bad request"}
    )
    with pytest.raises(InsiderBadRequestError) as info:
        client().upsert(BODY)
    assert requests_mock.call_count == 1
    assert info.value.too_large is False
    assert "users must be defined" in info.value.message
    requests_mock.post(
        UPSERT_URL,
        status_code=400,
        json={"error": "request body is bigger than maximum allowed size 5,000,000 bytes"},
    )
    with pytest.raises(InsiderBadRequestError) as info:
        client().upsert(BODY)
    assert info.value.too_large is True
    requests_mock.post(
        UPSERT_URL, status_code=400, json={"error": "users cannot be more than 10: bad request"}
    )
    with pytest.raises(InsiderBadRequestError) as info:
        client().upsert(BODY)
    assert info.value.too_large is True
    requests_mock.post(UPSERT_URL, status_code=413, text="")
    with pytest.raises(InsiderBadRequestError) as info:
        client().upsert(BODY)
    assert info.value.too_large is True


def test_404_is_config_error(requests_mock):
    requests_mock.post(UPSERT_URL, status_code=404, text="not found")
    with pytest.raises(InsiderConfigError) as info:
        client().upsert(BODY)
    assert "api_base_url" in info.value.message


def test_non_transient_request_errors_are_not_retried(requests_mock):
    requests_mock.post(UPSERT_URL, exc=requests.exceptions.TooManyRedirects("loop"))
    with pytest.raises(InsiderRequestFailedError):
        client().upsert(BODY)
    assert requests_mock.call_count == 1


class FakeClock:
    """A clock that advances only when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def test_retry_budget_outlasts_a_storm_then_gives_up(requests_mock):
    # A 429 storm longer than max_retries x backoff but shorter than the budget is ridden
    # out; one longer than the budget ends as not delivered, with no retry starting after it.
    clock = FakeClock()
    limited = {"status_code": 429, "json": {"error": "rejected: too many requests"}}
    requests_mock.post(UPSERT_URL, [limited] * 12 + [OK])
    c = client(
        max_retries=100,
        backoff_base_seconds=1,
        backoff_max_seconds=30,
        retry_budget_seconds=300,
        sleep=clock.sleep,
        clock=clock,
    )
    assert c.upsert(BODY).successful == 1
    assert clock.now > 60  # longer than the old 5 retries could wait
    clock = FakeClock()
    requests_mock.post(UPSERT_URL, **limited)
    c = client(
        max_retries=100,
        backoff_base_seconds=1,
        backoff_max_seconds=30,
        retry_budget_seconds=300,
        sleep=clock.sleep,
        clock=clock,
    )
    with pytest.raises(InsiderRequestFailedError) as info:
        c.upsert(BODY)
    assert info.value.reason == Undelivered.RATE_LIMITED
    assert clock.now <= 300
    assert "gave up" in info.value.message


def test_retry_after_beyond_the_budget_gives_up_without_sleeping(requests_mock):
    clock = FakeClock()
    requests_mock.post(
        UPSERT_URL, status_code=429, headers={"Retry-After": "120"}, json={"error": "slow down"}
    )
    c = client(max_retries=10, retry_budget_seconds=60, sleep=clock.sleep, clock=clock)
    with pytest.raises(InsiderRequestFailedError):
        c.upsert(BODY)
    assert clock.sleeps == []
    assert requests_mock.call_count == 1


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"status_code": 503}, Undelivered.SERVER_ERROR),
        ({"status_code": 429}, Undelivered.RATE_LIMITED),
        (
            {"status_code": 403, "json": {"message": "Request Limit Exceeded"}},
            Undelivered.RATE_LIMITED,
        ),
        ({"exc": requests.exceptions.ConnectTimeout("slow")}, Undelivered.TIMEOUT),
        (
            {"exc": requests.exceptions.ConnectionError("Name or service not known")},
            Undelivered.CONNECTION_ERROR,
        ),
        ({"exc": requests.exceptions.InvalidURL("bad")}, Undelivered.CANNOT_SEND),
        ({"status_code": 200, "json": {"data": {}}}, Undelivered.UNCONFIRMED),
    ],
)
def test_not_delivered_says_why(requests_mock, answer, reason):
    requests_mock.post(UPSERT_URL, **answer)
    with pytest.raises(InsiderRequestFailedError) as info:
        client(max_retries=1).upsert(BODY)
    assert info.value.reason == reason


def test_counts_are_required_for_a_2xx_to_be_a_result():
    assert parse_upsert_response(200, '{"data": {}}') is None
    assert parse_upsert_response(200, '{"data": {"successful": {}, "fail": {}}}') is None
    assert parse_upsert_response(200, '{"data": {"successful": {"count": true}}}') is None
    assert parse_upsert_response(200, '{"data": {"successful": {"count": 0}}}').successful == 0


def test_a_stopped_run_ends_retrying_at_once(requests_mock):
    import threading

    stop = threading.Event()
    requests_mock.post(UPSERT_URL, status_code=503)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        stop.set()  # another request failed fast while this one waited

    c = client(max_retries=50, retry_budget_seconds=3600, stop=stop, sleep=sleep)
    with pytest.raises(InsiderRequestFailedError) as info:
        c.upsert(BODY)
    assert info.value.reason == Undelivered.RUN_STOPPED
    assert requests_mock.call_count == 1
    assert len(sleeps) == 1
