"""The status policy: what each HTTP answer from SFMC means, in one table."""

import json
from http import HTTPStatus

import pytest
import requests
from tap_sfmc_de.errors import SfmcApiError
from tap_sfmc_de.status_policy import (
    HARDER_FACTOR,
    Action,
    Endpoint,
    classify,
    refuses_query,
    rowset_error,
    token_error,
)

FAULT = "<soap:Fault><faultstring>{}</faultstring></soap:Fault>"


def response(status, body="", headers=None):
    answer = requests.Response()
    answer.status_code = status
    answer._content = (body if isinstance(body, str) else json.dumps(body)).encode()
    answer.headers.update(headers or {})
    answer.reason = HTTPStatus(status).phrase
    return answer


# (endpoint, status, body) -> action; each row is one rule of status_policy.classify.
TABLE = [
    (Endpoint.REST, HTTPStatus.OK, {"count": 0}, Action.OK),
    (Endpoint.TOKEN, HTTPStatus.OK, {"access_token": "x"}, Action.OK),
    (Endpoint.SOAP, HTTPStatus.OK, "<ok/>", Action.OK),
    (Endpoint.REST, HTTPStatus.TOO_MANY_REQUESTS, {"errorcode": 50100}, Action.RETRY),
    (Endpoint.TOKEN, HTTPStatus.TOO_MANY_REQUESTS, {}, Action.RETRY),
    (Endpoint.REST, HTTPStatus.INTERNAL_SERVER_ERROR, "", Action.RETRY),
    (Endpoint.TOKEN, HTTPStatus.BAD_GATEWAY, "", Action.RETRY),
    (Endpoint.REST, HTTPStatus.SERVICE_UNAVAILABLE, "", Action.RETRY),
    (Endpoint.SOAP, HTTPStatus.INTERNAL_SERVER_ERROR, FAULT.format("Server busy"), Action.RETRY),
    (Endpoint.SOAP, HTTPStatus.INTERNAL_SERVER_ERROR, FAULT.format("Token Expired"), Action.REMINT),
    (Endpoint.REST, HTTPStatus.UNAUTHORIZED, {"message": "Not Authorized"}, Action.REMINT),
    (Endpoint.TOKEN, HTTPStatus.UNAUTHORIZED, {"error": "invalid_client"}, Action.FATAL),
    (Endpoint.TOKEN, HTTPStatus.BAD_REQUEST, {"error": "invalid_grant"}, Action.FATAL),
    (Endpoint.REST, HTTPStatus.FORBIDDEN, {"message": "Insufficient privileges"}, Action.FATAL),
    (Endpoint.REST, HTTPStatus.NOT_FOUND, {"message": "not found"}, Action.FATAL),
    (Endpoint.REST, HTTPStatus.BAD_REQUEST, {"message": "bad $filter"}, Action.FATAL),
]


@pytest.mark.parametrize(("endpoint", "status", "body", "action"), TABLE)
def test_each_status_has_one_meaning(endpoint, status, body, action):
    assert classify(response(status, body), endpoint).action == action


def test_50200_backs_off_harder_and_retry_after_is_read():
    blocked = classify(response(429, {"errorcode": 50200}), Endpoint.REST)
    assert (blocked.action, blocked.factor, blocked.wait) == (Action.RETRY, HARDER_FACTOR, None)
    asked = classify(response(429, {"errorcode": 50100}, {"Retry-After": "7"}), Endpoint.REST)
    assert (asked.action, asked.wait) == (Action.RETRY, 7.0)


def test_only_400_means_the_query_is_not_supported():
    assert refuses_query(HTTPStatus.BAD_REQUEST)
    assert not any(refuses_query(s) for s in (None, 401, 403, 404, 429, 500))


def fatal(status, body):
    return SfmcApiError(f"HTTP {status}: {body}", response(status, {}))


@pytest.mark.parametrize(
    ("status", "grant", "body", "hint"),
    [
        (400, "refresh_token", "invalid_grant", "authorize-url"),
        (401, "authorization_code", "expired", "authorize-url"),
        (401, "client_credentials", "invalid_client", "client_id/client_secret"),
        (400, "client_credentials", "bad request", "check subdomain (or auth_base_url)"),
    ],
)
def test_token_failures_name_the_fix(status, grant, body, hint):
    assert hint in str(token_error(fatal(status, body), grant))


def test_rowset_failures_name_the_fix():
    assert "data_extensions_read" in str(rowset_error(fatal(403, "no"), "Customers"))
    assert "CustomerKey" in str(rowset_error(fatal(404, "no"), "Customers"))
    other = fatal(409, "conflict")
    assert rowset_error(other, "Customers") is other
