"""The start-up check, with Insider mocked by requests-mock."""

import pytest
import requests
from target_insider_one.client import InsiderAuthError, InsiderConfigError

from .conftest import (
    COLUMNS_URL,
    UPSERT_URL,
    customer,
    ok_callback,
    record_msg,
    run_target,
    schema_msg,
    state_msg,
    upsert_calls,
)


def stream():
    return [schema_msg(), record_msg(customer(1)), state_msg(1)]


def columns_calls(mocker):
    return [r for r in mocker.request_history if r.url == COLUMNS_URL]


def test_check_is_one_read_only_request_with_the_credentials(requests_mock, make_config):
    requests_mock.post(UPSERT_URL, json=ok_callback)
    result = run_target(make_config(partner_name="AcmeShop"), stream())
    (call,) = columns_calls(requests_mock)
    assert call.json() == {"table": "contacts"}
    assert call.headers["X-PARTNER-NAME"] == "acmeshop"
    assert call.headers["X-REQUEST-TOKEN"] == "super-secret-key-123"
    assert requests_mock.request_history[0].url == COLUMNS_URL  # before any upsert
    assert result.stats["requests_sent"] == 1  # upserts only


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, {"message": "Access Denied. You do not have sufficient access."}),
        (401, {"message": "Partner token authentication failed."}),
        (400, {"message": "Partner is invalid."}),
    ],
)
def test_rejected_credentials_stop_before_reading_input(requests_mock, make_config, status, body):
    requests_mock.post(COLUMNS_URL, status_code=status, json=body)
    result = run_target(make_config(), stream(), expect_error=True)
    assert isinstance(result.error, InsiderAuthError)
    assert "TARGET_INSIDER_ONE_API_KEY" in result.error.message
    assert "partner_name" in result.error.message
    assert "super-secret-key-123" not in result.error.message
    assert result.stats["records_received"] == 0  # no line was read
    assert upsert_calls(requests_mock) == 0
    assert result.states == []


@pytest.mark.parametrize(
    "answer",
    [
        {"status_code": 404, "json": {"message": "Not Found"}},
        {"status_code": 503, "text": "<html>busy</html>"},
        {"status_code": 403, "json": {"message": "Request Limit Exceeded"}},
        {"status_code": 200, "text": "<html>proxy</html>"},
        {"exc": requests.exceptions.ReadTimeout},
    ],
    ids=["404", "503", "403-limit", "html-200", "timeout"],
)
def test_check_unavailable_is_a_warning_and_the_run_goes_on(
    requests_mock, make_config, caplog, answer
):
    requests_mock.post(COLUMNS_URL, **answer)
    requests_mock.post(UPSERT_URL, json=ok_callback)
    result = run_target(make_config(), stream())
    assert result.stats["users_upserted"] == 1
    assert result.states
    assert "not checked, continuing" in caplog.text
    assert result.target.runtime.stats.warnings


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            requests.exceptions.ConnectionError(
                "HTTPSConnectionPool: NameResolutionError: Failed to resolve 'insider.test'"
            ),
            "does not resolve (DNS)",
        ),
        (requests.exceptions.ConnectionError("Connection refused"), "the connection failed"),
        (requests.exceptions.SSLError("bad certificate"), "TLS handshake failed"),
    ],
)
def test_unreachable_host_names_api_base_url(requests_mock, make_config, error, expected):
    requests_mock.post(COLUMNS_URL, exc=error)
    result = run_target(make_config(), stream(), expect_error=True)
    assert isinstance(result.error, InsiderConfigError)
    assert "api_base_url 'https://insider.test'" in result.error.message
    assert expected in result.error.message
    assert result.stats["records_received"] == 0


def test_mapped_custom_attributes_insider_lacks_are_warned_about(
    requests_mock, make_config, caplog
):
    requests_mock.post(COLUMNS_URL, json=[{"key": "em"}, {"key": "c_data_source"}])
    requests_mock.post(UPSERT_URL, json=ok_callback)
    result = run_target(make_config(), stream())
    summary = result.target.runtime.stats.human_summary(
        status="succeeded", dead_letter_path=None, dry_run=False
    )
    for name in ("loyalty_points", "lifetime_value"):
        assert f"custom attribute {name!r} is not defined in Insider" in caplog.text
        assert f"WARNING: custom attribute {name!r}" in summary
    assert "'data_source' is not defined" not in caplog.text
    assert result.stats["users_upserted"] == 1  # a warning, not an error


def test_preflight_false_skips_the_check(requests_mock, make_config):
    requests_mock.post(UPSERT_URL, json=ok_callback)
    run_target(make_config(preflight=False), stream())
    assert columns_calls(requests_mock) == []


def test_dry_run_checks_credentials_too(requests_mock, make_config):
    requests_mock.post(COLUMNS_URL, status_code=403, json={"message": "Access Denied."})
    result = run_target(make_config(dry_run=True), stream(), expect_error=True)
    assert isinstance(result.error, InsiderAuthError)
    result = run_target(make_config(dry_run=True, preflight=False), stream())
    assert result.stats["dry_run_users"] == 1
