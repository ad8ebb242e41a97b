"""What each HTTP answer from SFMC means, decided here only, with the hints it shows.

The HTTP client (:mod:`tap_sfmc_de.client`) asks :func:`classify` about every response and
retries, re-mints or fails as it says; the callers that turn a failure into a message the
user can act on (token requests, rowset pages, capability probes, discovery) use the hint
functions below. sfmc-api.md lists the statuses.

Retried: 429 (honouring Retry-After up to ``max_retry_after_seconds``; errorcode 50200
backs off four times harder), 5xx, SOAP faults other than "Token Expired". Re-minted once:
REST 401 and SOAP "Token Expired". Fatal, with a message that names the fix: token-endpoint
400/401, REST 403 (scope), 404 (DE key), any other 4xx. A 400 to a query with ``$filter``
or ``$orderBy`` means the server does not support it (:func:`refuses_query`).

To add a rule: add a branch to :func:`classify` (before the catch-all), a hint below if the
user must fix something, and a case to ``tests/test_client.py``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus

import requests

from tap_sfmc_de.errors import SfmcApiError, SfmcAuthError
from tap_sfmc_de.retries import parse_retry_after, response_date

HARDER_FACTOR = 4.0  # errorcode 50200: too many concurrent requests
REQUESTS_BLOCKED = 50200  # SFMC errorcode of a 429 that blocks the client for a while


class Endpoint(StrEnum):
    """The kind of endpoint a request goes to (each reports errors its own way)."""

    TOKEN = "token"  # noqa: S105 - an endpoint name
    REST = "rest"
    SOAP = "soap"


class Action(StrEnum):
    """What the error policy does with a response."""

    OK = "ok"
    RETRY = "retry"
    REMINT = "remint"
    FATAL = "fatal"


@dataclass
class Decision:
    """What to do with a response."""

    action: Action
    reason: str = ""
    wait: float | None = None
    factor: float = 1.0
    blocked: bool = False  # errorcode 50200: too many concurrent requests


def classify(response: requests.Response, kind: str) -> Decision:  # noqa: PLR0911 - one per rule
    """Apply the error policy to one response.

    Args:
        response: The HTTP response.
        kind: The :class:`Endpoint` it came from.

    Returns:
        The decision.
    """
    status = response.status_code
    if kind == Endpoint.SOAP and status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        fault = soap_fault_string(response.text) or ""
        if "token expired" in fault.lower():
            return Decision(Action.REMINT, "SOAP Token Expired")
        return Decision(Action.RETRY, f"SOAP HTTP {status} {fault}".strip())
    if status < HTTPStatus.BAD_REQUEST:
        return Decision(Action.OK)
    message, code = sfmc_error_summary(response)
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        if code == REQUESTS_BLOCKED:
            return Decision(
                Action.RETRY,
                "HTTP 429 errorcode 50200 (requests blocked)",
                None,
                HARDER_FACTOR,
                blocked=True,
            )
        return Decision(Action.RETRY, f"HTTP 429 {message}".strip(), retry_after_seconds(response))
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return Decision(Action.RETRY, f"HTTP {status}")
    if kind == Endpoint.REST and status == HTTPStatus.UNAUTHORIZED:
        return Decision(Action.REMINT, "REST 401 Not Authorized")
    return Decision(Action.FATAL, f"HTTP {status}: {message or response.reason}")


def refuses_query(status: int | None) -> bool:
    """Whether a failed rowset request says the server does not support its query.

    Args:
        status: HTTP status of the failure (None when there was no response).

    Returns:
        True for 400: the ``$filter`` or ``$orderBy`` it carried is not supported.
    """
    return status == HTTPStatus.BAD_REQUEST


def sfmc_error_summary(response: requests.Response) -> tuple[str, int | None]:
    """Extract SFMC's ``message``/``errorcode`` (or OAuth ``error``) without echoing the body.

    Args:
        response: The response.

    Returns:
        A short message and the errorcode if present.
    """
    try:
        body = response.json()
    except ValueError:
        return "", None
    if not isinstance(body, dict):
        return "", None
    code = body.get("errorcode")
    message = body.get("message") or body.get("error_description") or body.get("error") or ""
    return str(message)[:200], code if isinstance(code, int) else None


def retry_after_seconds(response: requests.Response) -> float | None:
    """The wait a 429 asks for: ``Retry-After``, else SFMC's ``retryAfter`` body field.

    Both go through :func:`~tap_sfmc_de.retries.parse_retry_after`; an HTTP date is read
    against the response's own ``Date`` (the server clock), so clock skew does not count.

    Args:
        response: The 429 response.

    Returns:
        Seconds to wait (uncapped), or None when the server said nothing usable.
    """
    now = response_date(response) or dt.datetime.now(dt.UTC)
    seconds = parse_retry_after(response.headers.get("Retry-After"), now)
    if seconds is not None:
        return seconds
    try:
        body = response.json()
    except ValueError:
        return None
    return parse_retry_after(body.get("retryAfter"), now) if isinstance(body, dict) else None


def soap_fault_string(text: str) -> str | None:
    """Find a SOAP Fault's faultstring without a full XML parse.

    Args:
        text: Response body.

    Returns:
        The faultstring, or None if the body is not a fault.
    """
    if "Fault" not in text:
        return None
    start = text.find("faultstring")
    if start < 0:
        return "SOAP Fault"
    begin = text.find(">", start) + 1
    end = text.find("<", begin)
    return text[begin:end].strip()[:200] if begin > 0 and end > begin else "SOAP Fault"


# -- hints: what the user fixes, for the answers that stop the run ------------------------

REAUTHORIZE_HINT = (
    "run `python -m tap_sfmc_de.auth authorize-url --config CONFIG`, open the URL and log in, "
    "then `python -m tap_sfmc_de.auth exchange --config CONFIG --code CODE` with the code from "
    "the redirect (tap-sfmc-de-auth is the same command)"
)
CREDENTIALS_HINT = (
    "check client_id/client_secret, that the API Integration package is installed and "
    "enabled for this business unit (Installed Packages > Access tab), and account_id (MID)"
)
SCOPE_HINT = (
    "the token lacks the 'data_extensions_read' scope: enable Data Extensions > Read on the "
    "package (Setup > Apps > Installed Packages > your package > API Integration > Edit), "
    "wait up to 5 minutes, and include data_extensions_read in the scopes setting if you set it"
)


def token_error(exc: SfmcApiError, grant_type: str) -> SfmcAuthError:
    """A failed token request, worded for what the user fixes.

    Args:
        exc: The fatal answer of the token endpoint.
        grant_type: The grant that was asked for.

    Returns:
        The error naming the fix (re-authorize, credentials, or the auth host).
    """
    text = str(exc)
    if "invalid_grant" in text or (
        grant_type in {"refresh_token", "authorization_code"}
        and exc.status_code in {HTTPStatus.BAD_REQUEST, HTTPStatus.UNAUTHORIZED}
        and "invalid_client" not in text
    ):
        return SfmcAuthError(
            f"SFMC rejected the {grant_type.replace('_', ' ')} ({text}); refresh tokens are "
            f"single-use and expire: {REAUTHORIZE_HINT}."
        )
    if exc.status_code == HTTPStatus.UNAUTHORIZED or "invalid_client" in text:
        return SfmcAuthError(f"SFMC refused to issue a token ({text}): {CREDENTIALS_HINT}.")
    return SfmcAuthError(
        f"SFMC token request failed ({text}). If it persists, check subdomain (or "
        "auth_base_url) and that this machine can reach the auth host."
    )


def rowset_error(exc: SfmcApiError, de_key: str) -> SfmcApiError:
    """A fatal rowset answer, worded for what the user fixes.

    Args:
        exc: The fatal answer.
        de_key: The DE external key that was read.

    Returns:
        The error naming the scope (403) or the DE key (404); else ``exc`` itself.
    """
    if exc.status_code == HTTPStatus.FORBIDDEN:
        return SfmcApiError(f"Reading DE '{de_key}' was refused ({exc}): {SCOPE_HINT}.")
    if exc.status_code == HTTPStatus.NOT_FOUND:
        return SfmcApiError(
            f"Data Extension key '{de_key}' was not found ({exc}): use the external "
            "key (CustomerKey), not the DE name, and check the business unit (account_id)."
        )
    return exc


def rest_token_rejected() -> SfmcApiError:
    """REST keeps answering 401 after a fresh token.

    Returns:
        The error naming the credentials to check.
    """
    return SfmcApiError(
        f"REST rowset keeps answering 401 Not Authorized after a fresh token: {CREDENTIALS_HINT}."
    )


def soap_token_rejected() -> SfmcApiError:
    """SOAP keeps answering "Token Expired" after a fresh token.

    Returns:
        The error.
    """
    return SfmcApiError("SOAP calls keep failing with Token Expired after a re-mint")


def scope_missing() -> SfmcApiError:
    """The token response lists scopes, but not ``data_extensions_read``.

    Returns:
        The error naming the scope and where to enable it.
    """
    return SfmcApiError(f"The access token was issued without access to DE rows: {SCOPE_HINT}.")
