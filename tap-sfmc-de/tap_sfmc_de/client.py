"""HTTP session and the tap's single error policy.

Retried: 429 (honouring Retry-After up to ``max_retry_after_seconds``; errorcode 50200 backs
off four times harder), 5xx,
SOAP faults other than "Token Expired", timeouts, dropped connections and truncated
bodies. Re-minted once: REST 401 and SOAP "Token Expired". Fatal, with a message that
names the fix: token-endpoint 400/401, REST 403 (scope), 404 (DE key), any other 4xx.
How long to wait and when to give up is :class:`tap_sfmc_de.retries.RetryPolicy`.
Messages never include request bodies, headers or tokens.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import requests

from tap_sfmc_de.errors import RetriesExhaustedError, SfmcApiError, TokenExpiredError
from tap_sfmc_de.retries import RetryPolicy, parse_retry_after

LOGGER = logging.getLogger("tap-sfmc-de.http")
USER_AGENT = "tap-sfmc-de/0.1"
HARDER_FACTOR = 4.0  # errorcode 50200: too many concurrent requests
TRANSIENT_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
HTTP_UNAUTHORIZED = HTTPStatus.UNAUTHORIZED
HTTP_FORBIDDEN = HTTPStatus.FORBIDDEN
HTTP_NOT_FOUND = HTTPStatus.NOT_FOUND
HTTP_TOO_MANY = HTTPStatus.TOO_MANY_REQUESTS
HTTP_SERVER_ERROR = HTTPStatus.INTERNAL_SERVER_ERROR
HTTP_CLIENT_ERROR = HTTPStatus.BAD_REQUEST


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


def classify(response: requests.Response, kind: str) -> Decision:  # noqa: PLR0911
    """Apply the error policy to one response.

    Args:
        response: The HTTP response.
        kind: "token", "rest" or "soap".

    Returns:
        The decision.
    """
    status = response.status_code
    if kind == "soap" and status >= HTTP_SERVER_ERROR:
        fault = soap_fault_string(response.text) or ""
        if "token expired" in fault.lower():
            return Decision(Action.REMINT, "SOAP Token Expired")
        return Decision(Action.RETRY, f"SOAP HTTP {status} {fault}".strip())
    if status < HTTP_CLIENT_ERROR:
        return Decision(Action.OK)
    message, code = sfmc_error_summary(response)
    if status == HTTP_TOO_MANY:
        if code == 50200:  # noqa: PLR2004
            return Decision(
                Action.RETRY, "HTTP 429 errorcode 50200 (requests blocked)", None, HARDER_FACTOR
            )
        return Decision(Action.RETRY, f"HTTP 429 {message}".strip(), retry_after_seconds(response))
    if status >= HTTP_SERVER_ERROR:
        return Decision(Action.RETRY, f"HTTP {status}")
    if kind == "rest" and status == HTTP_UNAUTHORIZED:
        return Decision(Action.REMINT, "REST 401 Not Authorized")
    return Decision(Action.FATAL, f"HTTP {status}: {message or response.reason}")


@dataclass
class HttpClient:
    """A requests session plus the retry loop."""

    policy: RetryPolicy
    session: requests.Session = field(default_factory=requests.Session)
    sleep: Callable[[float], None] = time.sleep
    logger: logging.Logger = LOGGER

    def __post_init__(self) -> None:
        """Set the User-Agent."""
        self.session.headers["User-Agent"] = USER_AGENT

    def send(
        self,
        method: str,
        url: str,
        *,
        kind: str,
        prepare: Callable[[], Mapping[str, Any]],
        on_remint: Callable[[], None] | None = None,
    ) -> requests.Response:
        """Send a request under the error policy.

        Args:
            method: HTTP method.
            url: Absolute URL used for messages (the real one may come from ``prepare``).
            kind: "token", "rest" or "soap" (selects error handling).
            prepare: Returns keyword arguments for ``requests`` (url, headers, json/data);
                called before every attempt, so a re-minted token is picked up.
            on_remint: Invalidates the cached token; called at most once.

        Returns:
            A successful response whose body is complete.

        Raises:
            RetriesExhaustedError: When transient failures persist.
            TokenExpiredError: When the token is rejected again after a re-mint.
            SfmcApiError: For fatal responses (callers turn these into specific messages).
        """
        reminted = False
        attempt = 0
        waited = 0.0
        while True:
            decision, response = self._attempt(method, url, kind, prepare)
            if decision.action == Action.OK and response is not None:
                return response
            if decision.action == Action.REMINT:
                if reminted or on_remint is None:
                    raise TokenExpiredError(decision.reason)
                reminted = True
                on_remint()
                continue
            if decision.action == Action.FATAL:
                raise SfmcApiError(decision.reason, response)
            wait = self.policy.wait(attempt, decision.wait, decision.factor)
            give_up = self.policy.give_up_reason(attempt, waited, wait)
            if give_up:
                raise RetriesExhaustedError(
                    f"{decision.reason}: still failing after {attempt + 1} attempts to "
                    f"{_describe(url)} ({give_up}); SFMC may be throttling or down, try again "
                    "later."
                )
            self._log_retry(decision, url, attempt, wait)
            self.sleep(wait)
            waited += wait
            attempt += 1

    def _log_retry(self, decision: Decision, url: str, attempt: int, wait: float) -> None:
        asked = decision.wait
        capped = (
            f"; server asked {asked:.0f}s, capped by max_retry_after_seconds"
            if asked is not None and asked > self.policy.max_retry_after_seconds
            else ""
        )
        self.logger.warning(
            "Transient failure (%s) on %s; retry %d/%d in %.2fs%s",
            decision.reason,
            _describe(url),
            attempt + 1,
            self.policy.max_retries,
            wait,
            capped,
        )

    def _attempt(
        self,
        method: str,
        url: str,
        kind: str,
        prepare: Callable[[], Mapping[str, Any]],
    ) -> tuple[Decision, requests.Response | None]:
        kwargs = {"url": url, **prepare()}
        try:
            response = self.session.request(method, timeout=self.policy.request_timeout, **kwargs)
            decision = classify(response, kind)
            if decision.action == Action.OK and kind != "soap":
                response.json()  # a dropped connection can leave a truncated body
        except TRANSIENT_EXCEPTIONS as exc:
            return Decision(Action.RETRY, type(exc).__name__), None
        except ValueError:
            return Decision(Action.RETRY, "incomplete or invalid JSON body"), None
        return decision, response


def _describe(url: str) -> str:
    # Only scheme, host and path: query strings are not secret but can be long.
    return url.split("?", 1)[0]


def build_query(params: Mapping[str, Any]) -> str:
    """Encode OData-style parameters keeping the literal ``$`` and using %20 for spaces.

    Args:
        params: Parameter names (with ``$``) and values.

    Returns:
        The query string without the leading ``?``.
    """
    return "&".join(f"{name}={quote(str(value), safe='')}" for name, value in params.items())


def response_date(response: requests.Response) -> dt.datetime | None:
    """The server clock from the HTTP Date header, as aware UTC.

    Args:
        response: Any response.

    Returns:
        The Date header value, or None if absent or unparsable.
    """
    header = response.headers.get("Date")
    if not header:
        return None
    try:
        return email.utils.parsedate_to_datetime(header).astimezone(dt.UTC)
    except (TypeError, ValueError):
        return None


def json_body(response: requests.Response) -> dict[str, Any]:
    """Decode a JSON object body.

    Args:
        response: A successful response.

    Returns:
        The object.

    Raises:
        SfmcApiError: When the body is not a JSON object.
    """
    try:
        body = response.json()
    except json.JSONDecodeError as exc:
        raise SfmcApiError("SFMC returned a body that is not JSON") from exc
    if not isinstance(body, dict):
        raise SfmcApiError("SFMC returned JSON that is not an object")
    return body
