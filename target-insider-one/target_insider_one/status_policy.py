"""What each HTTP status from Insider means, decided here only, with the hints it shows.

The upsert client (:mod:`target_insider_one.client`) and the start-up check
(:mod:`target_insider_one.preflight`) both ask :func:`verdict`; the sink acts on the error
the client raised for it (split, dead-letter, stop). insider-api.md §3 lists the statuses.

To add a rule: add a branch to :func:`verdict` (before the catch-all), a hint below if the
user must fix something, and a case to ``tests/test_status_policy.py``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from http import HTTPStatus

from target_insider_one.settlement import Undelivered


class Verdict(StrEnum):
    """What to do with one HTTP answer."""

    DELIVERED = "delivered"  # 2xx: Insider's counts say what was stored
    RETRY = "retry"  # transient: retried within the budget, then not delivered
    FAIL_FAST = "fail_fast"  # credentials rejected: stop the run
    SPLIT = "split"  # body refused as too large: send it in halves
    DEAD_LETTER = "dead_letter"  # body refused for its content: dead-letter its records
    WRONG_ENDPOINT = "wrong_endpoint"  # any other status: api_base_url is wrong, stop


# 400/413 messages that mean "too big / too many users": split the request and retry halves.
_SIZE_HINT = re.compile(
    r"bigger than|too large|maximum allowed size|too many users|more than [\d,]+|"
    r"at most [\d,]+|exceed",
    re.IGNORECASE,
)
_REFUSED_BODY = {HTTPStatus.BAD_REQUEST, HTTPStatus.UNPROCESSABLE_ENTITY}


def verdict(status: int, message: str) -> Verdict:  # noqa: PLR0911 - one return per rule
    """Apply the status policy to one answer.

    Args:
        status: HTTP status.
        message: Insider's error message (empty for a 2xx).

    Returns:
        The verdict.
    """
    lowered = message.lower()
    if HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
        return Verdict.DELIVERED
    if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return Verdict.RETRY
    if status == HTTPStatus.FORBIDDEN and "limit" in lowered:
        return Verdict.RETRY  # 403 "Request Limit Exceeded" is throttling, not credentials
    if status in {HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN}:
        return Verdict.FAIL_FAST
    if status == HTTPStatus.BAD_REQUEST and "partner is invalid" in lowered:
        # Insider's error page lists 400 "Partner is invalid." for a wrong partner name:
        # a credentials failure, not a bad body to dead-letter.
        return Verdict.FAIL_FAST
    if status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE or (
        status in _REFUSED_BODY and _SIZE_HINT.search(message)
    ):
        return Verdict.SPLIT
    if status in _REFUSED_BODY:
        return Verdict.DEAD_LETTER
    return Verdict.WRONG_ENDPOINT


def undelivered_reason(status: int) -> Undelivered:
    """Why a retried status was not delivered once its retries ran out.

    Args:
        status: An HTTP status whose verdict is RETRY.

    Returns:
        SERVER_ERROR for 5xx, else RATE_LIMITED (429, 403 "Request Limit Exceeded").
    """
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return Undelivered.SERVER_ERROR
    return Undelivered.RATE_LIMITED


# -- hints: what the user fixes, for the verdicts that stop the run ----------------------

_KEY_HINT = (
    "Insider One API key of type 'Unified Customer Database (UCD)' (InOne Settings > "
    "Integration Settings > API Keys)"
)


def upsert_credentials_hint(status: int, message: str, partner_name: str) -> str:
    """FAIL_FAST on an upsert.

    Args:
        status: HTTP status.
        message: Insider's message.
        partner_name: The partner name as sent.

    Returns:
        The message naming the settings to fix.
    """
    return (
        f"Insider rejected the credentials (HTTP {status}: {message}). Check partner_name "
        f"(sent lowercase as {partner_name!r}) and api_key: the key must be an {_KEY_HINT}, "
        "the Upsert API must be enabled for the account, "
        "and this machine's IP must be allowed if the key has an IP allowlist. "
        "The run was stopped; nothing after the last emitted STATE was confirmed."
    )


def startup_credentials_hint(status: int, message: str, partner_name: str) -> str:
    """FAIL_FAST on the start-up check (before any input was read).

    Args:
        status: HTTP status.
        message: Insider's message.
        partner_name: The partner name as sent.

    Returns:
        The message naming the settings (and environment variables) to fix.
    """
    return (
        f"Insider rejected the credentials before any data was read (HTTP {status}: "
        f"{message}). Fix partner_name (TARGET_INSIDER_ONE_PARTNER_NAME; sent lowercase as "
        f"{partner_name!r}) or api_key (TARGET_INSIDER_ONE_API_KEY): it must be an "
        f"{_KEY_HINT} for that partner, and this machine's IP must be "
        "allowed if the key has an IP allowlist. Nothing was sent."
    )


def wrong_endpoint_hint(status: int, message: str, url: str) -> str:
    """WRONG_ENDPOINT on an upsert.

    Args:
        status: HTTP status.
        message: Insider's message.
        url: The URL that answered.

    Returns:
        The message naming ``api_base_url``.
    """
    return f"Insider answered HTTP {status} ({message}) for {url}; check api_base_url"


def unconfirmed_hint(status: int, message: str) -> str:
    """A 2xx without Insider's upsert counts (not retried: a retry gets the same page).

    Args:
        status: HTTP status.
        message: An excerpt of the body.

    Returns:
        The message naming ``api_base_url``.
    """
    return (
        f"HTTP {status} without Insider's upsert counts ({message}); "
        "whether these users were stored is unknown: check api_base_url"
    )
