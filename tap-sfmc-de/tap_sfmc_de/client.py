"""HTTP session and the tap's single error policy.

Retried: 429 (honouring Retry-After; errorcode 50200 backs off four times harder), 5xx,
SOAP faults other than "Token Expired", timeouts, dropped connections and truncated
bodies. Re-minted once: REST 401 and SOAP "Token Expired". Fatal, with a message that
names the fix: token-endpoint 400/401, REST 403 (scope), 404 (DE key), any other 4xx.
Messages never include request bodies, headers or tokens.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from tap_sfmc_de.errors import RetriesExhaustedError, SfmcApiError, TokenExpiredError
from tap_sfmc_de.settings import RetryPolicy

LOGGER = logging.getLogger("tap-sfmc-de.http")
USER_AGENT = "tap-sfmc-de/0.1"
MAX_RETRY_AFTER_SECONDS = 600.0
HARDER_FACTOR = 4.0  # errorcode 50200: too many concurrent requests
TRANSIENT_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_TOO_MANY = 429
HTTP_SERVER_ERROR = 500
HTTP_CLIENT_ERROR = 400


@dataclass
class Decision:
    """What to do with a response."""

    action: str  # "ok" | "retry" | "remint" | "fatal"
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
    """Parse ``Retry-After`` (seconds or HTTP date), or SFMC's ``retryAfter`` body field.

    Args:
        response: The 429 response.

    Returns:
        Seconds to wait, or None when the server did not say.
    """
    header = response.headers.get("Retry-After")
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError):
                return None
            return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("retryAfter") if isinstance(body, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


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
            return Decision("remint", "SOAP Token Expired")
        return Decision("retry", f"SOAP HTTP {status} {fault}".strip())
    if status < HTTP_CLIENT_ERROR:
        return Decision("ok")
    message, code = sfmc_error_summary(response)
    if status == HTTP_TOO_MANY:
        if code == 50200:  # noqa: PLR2004
            return Decision(
                "retry", "HTTP 429 errorcode 50200 (requests blocked)", None, HARDER_FACTOR
            )
        return Decision("retry", f"HTTP 429 {message}".strip(), retry_after_seconds(response))
    if status >= HTTP_SERVER_ERROR:
        return Decision("retry", f"HTTP {status}")
    if kind == "rest" and status == HTTP_UNAUTHORIZED:
        return Decision("remint", "REST 401 Not Authorized")
    return Decision("fatal", f"HTTP {status}: {message or response.reason}")


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

    def backoff(self, attempt: int, factor: float = 1.0) -> float:
        """Exponential backoff with full jitter in [0.5, 1.5) of the nominal delay.

        Args:
            attempt: 0-based attempt that just failed.
            factor: Multiplier (4 for errorcode 50200).

        Returns:
            Seconds to wait.
        """
        nominal = self.policy.backoff_base_seconds * (2**attempt) * factor
        capped = min(nominal, self.policy.backoff_max_seconds * factor)
        return capped * random.uniform(0.5, 1.5)

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
        while True:
            decision, response = self._attempt(method, url, kind, prepare)
            if decision.action == "ok" and response is not None:
                return response
            if decision.action == "remint":
                if reminted or on_remint is None:
                    raise TokenExpiredError(decision.reason)
                reminted = True
                on_remint()
                continue
            if decision.action == "fatal":
                raise SfmcApiError(decision.reason, response)
            if attempt >= self.policy.max_retries:
                raise RetriesExhaustedError(
                    f"{decision.reason}: still failing after {attempt + 1} attempts to "
                    f"{_describe(url)}; SFMC may be throttling or down, try again later."
                )
            wait = decision.wait
            if wait is None:
                wait = self.backoff(attempt, decision.factor)
            else:
                wait = min(wait, MAX_RETRY_AFTER_SECONDS) + random.uniform(0, 0.1)
            self.logger.warning(
                "Transient failure (%s) on %s; retry %d/%d in %.2fs",
                decision.reason,
                _describe(url),
                attempt + 1,
                self.policy.max_retries,
                wait,
            )
            self.sleep(wait)
            attempt += 1

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
            if decision.action == "ok" and kind != "soap":
                response.json()  # a dropped connection can leave a truncated body
        except TRANSIENT_EXCEPTIONS as exc:
            return Decision("retry", type(exc).__name__), None
        except ValueError:
            return Decision("retry", "incomplete or invalid JSON body"), None
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
