"""The status policy: one table of what each Insider answer means."""

from http import HTTPStatus

import pytest
from target_insider_one.settlement import Undelivered
from target_insider_one.status_policy import Verdict, undelivered_reason, verdict

TABLE = [
    (HTTPStatus.OK, "", Verdict.DELIVERED),
    (HTTPStatus.CREATED, "", Verdict.DELIVERED),
    (HTTPStatus.TOO_MANY_REQUESTS, "rejected: too many requests", Verdict.RETRY),
    (HTTPStatus.INTERNAL_SERVER_ERROR, "", Verdict.RETRY),
    (HTTPStatus.BAD_GATEWAY, "<html>bad gateway", Verdict.RETRY),
    (HTTPStatus.SERVICE_UNAVAILABLE, "", Verdict.RETRY),
    (HTTPStatus.FORBIDDEN, "Request Limit Exceeded", Verdict.RETRY),
    (HTTPStatus.FORBIDDEN, "Access Denied. You do not have sufficient access.", Verdict.FAIL_FAST),
    (HTTPStatus.UNAUTHORIZED, "Unauthorized", Verdict.FAIL_FAST),
    (HTTPStatus.BAD_REQUEST, "Partner is invalid.", Verdict.FAIL_FAST),
    (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "", Verdict.SPLIT),
    (HTTPStatus.BAD_REQUEST, "Request body is bigger than 5MB", Verdict.SPLIT),
    (HTTPStatus.BAD_REQUEST, "users can contain at most 1000 items", Verdict.SPLIT),
    (HTTPStatus.UNPROCESSABLE_ENTITY, "too many users", Verdict.SPLIT),
    (HTTPStatus.BAD_REQUEST, "users is required", Verdict.DEAD_LETTER),
    (HTTPStatus.UNPROCESSABLE_ENTITY, "invalid attribute", Verdict.DEAD_LETTER),
    (HTTPStatus.NOT_FOUND, "Not Found", Verdict.WRONG_ENDPOINT),
    (HTTPStatus.METHOD_NOT_ALLOWED, "", Verdict.WRONG_ENDPOINT),
    (HTTPStatus.NOT_MODIFIED, "", Verdict.WRONG_ENDPOINT),
]


@pytest.mark.parametrize(("status", "message", "expected"), TABLE)
def test_each_status_has_one_meaning(status, message, expected):
    assert verdict(status, message) is expected


def test_retried_statuses_say_why_they_were_not_delivered():
    assert undelivered_reason(HTTPStatus.SERVICE_UNAVAILABLE) is Undelivered.SERVER_ERROR
    assert undelivered_reason(HTTPStatus.TOO_MANY_REQUESTS) is Undelivered.RATE_LIMITED
    assert undelivered_reason(HTTPStatus.FORBIDDEN) is Undelivered.RATE_LIMITED
