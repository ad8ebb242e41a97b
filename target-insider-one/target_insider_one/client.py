"""HTTP client for Insider's upsert endpoint, with one error policy.

- 2xx: parsed into :class:`UpsertResponse` (a 200 can still carry per-user failures); a
  2xx whose body is not an upsert result is :class:`InsiderRequestFailedError`, because it
  does not prove that anything was stored.
- Retried with exponential backoff and jitter, within a time budget per request: 429
  (honouring ``Retry-After``), 5xx, 403 "Request Limit Exceeded", timeouts, dropped
  connections and DNS failures.
- 401 / other 403 ("Access Denied") / 400 "Partner is invalid.": :class:`InsiderAuthError`,
  never retried.
- 400 / 413 / 422: :class:`InsiderBadRequestError`, never retried; ``too_large`` tells the
  caller to split the request and send the halves.
- Other 4xx (e.g. 404 for a wrong ``api_base_url``): :class:`InsiderConfigError`.
- Not delivered (retries or budget exhausted, a 2xx without Insider's counts, a request
  that cannot be sent): :class:`InsiderRequestFailedError`, whose ``reason`` says why.

Headers (which carry the API key) are never logged or put into exception messages.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

from target_insider_one.settlement import Undelivered

if TYPE_CHECKING:
    from collections.abc import Callable

    from target_insider_one.summary import RunStats

LOGGER = logging.getLogger("target_insider_one.client")
RETRY_AFTER_CAP_SECONDS = 300.0
# 400/413 messages that mean "too big / too many users": split the request and retry halves.
_SIZE_HINT = re.compile(
    r"bigger than|too large|maximum allowed size|too many users|more than [\d,]+|"
    r"at most [\d,]+|exceed",
    re.IGNORECASE,
)
USER_AGENT = "target-insider-one/0.1.0 (+singer-sdk)"


class InsiderError(Exception):
    """Base class for errors talking to Insider."""

    def __init__(self, message: str, status: int | None = None) -> None:
        """Create the error.

        Args:
            message: What went wrong (never contains credentials).
            status: HTTP status, if a response was received.
        """
        super().__init__(message)
        self.message = message
        self.status = status


class InsiderAuthError(InsiderError):
    """Credentials rejected: stop the run."""


class InsiderConfigError(InsiderError):
    """The endpoint answered in a way that means the configuration is wrong."""


class InsiderBadRequestError(InsiderError):
    """Insider refused the request body (not retried)."""

    def __init__(self, message: str, status: int, too_large: bool) -> None:
        """Create the error.

        Args:
            message: Insider's message.
            status: HTTP status.
            too_large: Whether the cause is the request size or user count.
        """
        super().__init__(message, status)
        self.too_large = too_large


class InsiderRequestFailedError(InsiderError):
    """The request was not delivered: whether Insider stored its users is unknown."""

    def __init__(
        self, message: str, status: int | None, attempts: int, reason: Undelivered
    ) -> None:
        """Create the error.

        Args:
            message: Last failure.
            status: Last HTTP status, if any.
            attempts: Attempts made.
            reason: Why it was not delivered.
        """
        super().__init__(message, status)
        self.attempts = attempts
        self.reason = reason


@dataclass
class UpsertResponse:
    """What a 2xx upsert answer says."""

    status: int
    successful: int | None = None
    fail_count: int = 0
    errors: dict[str, list[str]] = field(default_factory=dict)


def parse_upsert_response(status: int, text: str) -> UpsertResponse | None:
    """Parse ``{"data":{"successful":{"count":N},"fail":{"count":M,"errors":{...}}}}``.

    Args:
        status: HTTP status.
        text: Response body.

    Returns:
        The parsed response, or None when the body is not an upsert result with Insider's
        counts (e.g. an HTML page from a proxy, or ``{"data": {}}``): such a 2xx does not
        prove that anything was stored.
    """
    try:
        body = json.loads(text)
    except ValueError:
        return None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        return None
    successful = data.get("successful") or {}
    fail = data.get("fail") or {}
    errors = fail.get("errors") if isinstance(fail, dict) else None
    parsed_errors: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, messages in errors.items():
            if isinstance(messages, list):
                parsed_errors[str(key)] = [str(m) for m in messages]
            else:
                parsed_errors[str(key)] = [str(messages)]
    count = fail.get("count") if isinstance(fail, dict) else None
    ok = successful.get("count") if isinstance(successful, dict) else None
    if not _is_count(ok) and not _is_count(count):
        return None
    return UpsertResponse(
        status=status,
        successful=int(ok) if _is_count(ok) else None,
        fail_count=int(count) if _is_count(count) else 0,
        errors=parsed_errors,
    )


def _is_count(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def error_message(response: requests.Response) -> str:
    """Insider's error message from a response body (``error`` or ``message``).

    Args:
        response: The HTTP response.

    Returns:
        The message, or a short excerpt of the body.
    """
    text = response.text or ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if body.get(key):
                return str(body[key])
    excerpt = " ".join(text.split())[:200]
    return excerpt or (response.reason or f"HTTP {response.status_code}")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date).

    Args:
        value: Header value.
        now: Current UNIX time (for tests).

    Returns:
        Seconds (capped at 300), or None if absent or unparseable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, min(seconds, RETRY_AFTER_CAP_SECONDS))


class InsiderClient:
    """Sends upsert requests; safe to use from several threads."""

    def __init__(
        self,
        *,
        upsert_url: str,
        partner_name: str,
        api_key: str,
        timeout: float,
        max_retries: int,
        backoff_base_seconds: float,
        backoff_max_seconds: float,
        stats: RunStats,
        retry_budget_seconds: float | None = None,
        pool_size: int = 4,
        stop: threading.Event | None = None,
        sleep: Callable[[float], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create the client.

        Args:
            upsert_url: Full upsert URL.
            partner_name: Lowercase partner name.
            api_key: UCD API key.
            timeout: Per-request timeout in seconds.
            max_retries: Retries after the first attempt.
            backoff_base_seconds: First backoff delay.
            backoff_max_seconds: Longest backoff delay.
            stats: Run statistics (requests, retries).
            retry_budget_seconds: No retry starts later than this after the first attempt
                (None: only ``max_retries`` limits retrying).
            pool_size: HTTP connection pool size per thread.
            stop: Set when the run stops: requests still retrying give up at once.
            sleep: Sleep function (tests replace it; by default a wait on ``stop``).
            clock: Monotonic clock (tests replace it).
        """
        self.upsert_url = upsert_url
        self.partner_name = partner_name
        self._headers = {
            "X-PARTNER-NAME": partner_name,
            "X-REQUEST-TOKEN": api_key,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base_seconds
        self.backoff_max = backoff_max_seconds
        self.stats = stats
        self.retry_budget = retry_budget_seconds
        self._pool_size = pool_size
        self._stop = stop or threading.Event()
        self._sleep = sleep or self._stop.wait
        self._clock = clock
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        """Never show the headers.

        Returns:
            A safe representation.
        """
        return f"InsiderClient(url={self.upsert_url!r}, partner={self.partner_name!r})"

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self._pool_size)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close every thread's session."""
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def post_once(self, url: str, payload: dict[str, Any], *, timeout: float) -> requests.Response:
        """POST a JSON payload once, with the credentials, no retries (start-up check).

        Args:
            url: Full URL.
            payload: JSON body.
            timeout: Seconds (connect and read).

        Returns:
            The response, whatever its status.
        """
        return self._session().post(url, json=payload, headers=self._headers, timeout=timeout)

    def backoff_delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Delay before retry number ``attempt`` (1-based).

        Exponential (``base * 2**(attempt-1)``, capped at ``backoff_max``) with "equal
        jitter" (half fixed, half random). A ``Retry-After`` is honoured as a minimum.

        Args:
            attempt: Retry number.
            retry_after: Seconds requested by the server, if any.

        Returns:
            Seconds to wait.
        """
        delay = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        delay = delay / 2 + random.uniform(0, delay / 2)
        if retry_after is not None:
            delay = max(retry_after, min(delay, retry_after + self.backoff_base))
        return delay

    def upsert(self, body: bytes) -> UpsertResponse:
        """POST one request body, retrying transient failures.

        Args:
            body: Exact request body.

        Returns:
            The parsed 2xx response.

        Raises:
            InsiderAuthError: Credentials rejected.
            InsiderConfigError: Endpoint not found or method not allowed.
            InsiderBadRequestError: Body refused (400/413/422).
            InsiderRequestFailedError: Not delivered: retries or their time budget
                exhausted, a 2xx without Insider's counts, or a request that cannot be sent.
        """
        attempt = 0
        started = self._clock()
        while True:
            attempt += 1
            self.stats.add(requests_sent=1)
            retry_after: float | None = None
            status: int | None = None
            reason = Undelivered.CONNECTION_ERROR
            try:
                response = self._session().post(
                    self.upsert_url, data=body, headers=self._headers, timeout=self.timeout
                )
            except (
                requests.Timeout,
                requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError,
            ) as exc:
                problem = f"{type(exc).__name__} (no response)"
                if isinstance(exc, requests.Timeout):
                    reason = Undelivered.TIMEOUT
            except requests.RequestException as exc:
                # Not transient (e.g. invalid URL or too many redirects): do not retry.
                raise InsiderRequestFailedError(
                    f"{type(exc).__name__}: request could not be sent",
                    None,
                    attempt,
                    Undelivered.CANNOT_SEND,
                ) from None
            else:
                status = response.status_code
                if 200 <= status < 300:  # noqa: PLR2004
                    parsed = parse_upsert_response(status, response.text)
                    if parsed is None:
                        # Not retried: a retry would most likely get the same page.
                        raise InsiderRequestFailedError(
                            f"HTTP {status} without Insider's upsert counts "
                            f"({error_message(response)}); "
                            "whether these users were stored is unknown: check api_base_url",
                            status,
                            attempt,
                            Undelivered.UNCONFIRMED,
                        )
                    return parsed
                message = error_message(response)
                problem = f"HTTP {status}: {message}"
                lowered = message.lower()
                if status == 429 or status >= 500 or (status == 403 and "limit" in lowered):  # noqa: PLR2004
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    reason = (
                        Undelivered.SERVER_ERROR
                        if status >= HTTPStatus.INTERNAL_SERVER_ERROR
                        else Undelivered.RATE_LIMITED
                    )
                elif status in {401, 403} or (status == 400 and "partner is invalid" in lowered):  # noqa: PLR2004
                    # Insider's error page lists 400 "Partner is invalid." for a wrong
                    # partner name: a credentials failure, not a bad body to dead-letter.
                    raise InsiderAuthError(self._auth_message(status, message), status)
                elif status in {400, 413, 422}:
                    too_large = status == 413 or bool(_SIZE_HINT.search(message))  # noqa: PLR2004
                    raise InsiderBadRequestError(message, status, too_large)
                else:
                    raise InsiderConfigError(
                        f"Insider answered HTTP {status} ({message}) for {self.upsert_url}; "
                        "check api_base_url",
                        status,
                    )
            failure = InsiderRequestFailedError(problem, status, attempt, reason)
            self._wait_before_retry(failure, started, retry_after)

    def _wait_before_retry(
        self, failure: InsiderRequestFailedError, started: float, retry_after: float | None
    ) -> None:
        """Sleep before the next attempt, or give up.

        Args:
            failure: The attempt that just failed, as it would be reported.
            started: When the first attempt started (``clock`` time).
            retry_after: Seconds the server asked for, if any.

        Raises:
            InsiderRequestFailedError: Retries or their budget exhausted, or the run stopped.
        """
        attempt = failure.attempts
        delay = self.backoff_delay(attempt, retry_after)
        elapsed = self._clock() - started
        if attempt > self.max_retries or (
            self.retry_budget is not None and elapsed + delay > self.retry_budget
        ):
            raise InsiderRequestFailedError(
                f"{failure.message}; gave up after {attempt} attempts in {elapsed:.0f}s",
                failure.status,
                attempt,
                failure.reason,
            )
        self.stats.add(retries=1)
        LOGGER.warning(
            "Insider upsert attempt %d/%d failed (%s); retrying in %.2fs",
            attempt,
            self.max_retries + 1,
            failure.message,
            delay,
        )
        self._sleep(delay)
        if self._stop.is_set():
            raise InsiderRequestFailedError(
                f"{failure.message}; the run stopped while it was being retried",
                failure.status,
                attempt,
                Undelivered.RUN_STOPPED,
            )

    def _auth_message(self, status: int, message: str) -> str:
        return (
            f"Insider rejected the credentials (HTTP {status}: {message}). Check partner_name "
            f"(sent lowercase as {self.partner_name!r}) and api_key: the key must be an "
            "Insider One API key of type 'Unified Customer Database (UCD)' (InOne Settings > "
            "Integration Settings > API Keys), the Upsert API must be enabled for the account, "
            "and this machine's IP must be allowed if the key has an IP allowlist. "
            "The run was stopped; nothing after the last emitted STATE was confirmed."
        )
