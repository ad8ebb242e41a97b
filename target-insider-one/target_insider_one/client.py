"""HTTP client for Insider's upsert endpoint.

What each status means is :mod:`target_insider_one.status_policy`; how long to wait and
when to give up is :class:`target_insider_one.retries.RetryPolicy`. Here each verdict
becomes a result or an error:

- DELIVERED: parsed into :class:`UpsertResponse` (a 200 can still carry per-user
  failures); a 2xx whose body is not an upsert result is :class:`InsiderRequestFailedError`,
  because it does not prove that anything was stored.
- RETRY (429, 5xx, 403 "Request Limit Exceeded"), timeouts, dropped connections and DNS
  failures: retried, then :class:`InsiderRequestFailedError`, whose ``reason`` says why.
- FAIL_FAST: :class:`InsiderAuthError`; WRONG_ENDPOINT: :class:`InsiderConfigError`.
- SPLIT / DEAD_LETTER: :class:`InsiderBadRequestError` (``too_large`` for SPLIT).

Headers (which carry the API key) are never logged or put into exception messages.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from typing_extensions import override

from target_insider_one import status_policy
from target_insider_one.retries import requested_wait
from target_insider_one.settlement import Undelivered
from target_insider_one.status_policy import Verdict

if TYPE_CHECKING:
    from collections.abc import Callable

    from target_insider_one.retries import RetryPolicy
    from target_insider_one.summary import RunStats

LOGGER = logging.getLogger("target_insider_one.client")
TRANSIENT_EXCEPTIONS = (
    requests.Timeout,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
USER_AGENT = "target-insider-one/0.1.0 (+singer-sdk)"


class InsiderError(Exception):
    """Base class for errors talking to Insider."""

    @override
    def __init__(self, message: str, status: int | None = None) -> None:
        """Create the error.

        Args:
            message: What went wrong (never contains credentials).
            status: HTTP status, if a response was received.
        """
        super().__init__(message)
        self.message = message
        self.status = status


class InsiderFatalError(InsiderError):
    """Stops the run: fast-fail, rejected credentials or a wrong endpoint."""

    @override
    def __init__(self, message: str, status: int | None = None, exit_code: int = 1) -> None:
        """Create the error.

        Args:
            message: Why the run stops (never contains credentials).
            status: HTTP status, if a response was received.
            exit_code: The process exit code (see :class:`~.settlement.ExitCode`).
        """
        super().__init__(message, status)
        self.exit_code = exit_code


class InsiderAuthError(InsiderError):
    """Credentials rejected: stop the run."""


class InsiderConfigError(InsiderError):
    """The endpoint answered in a way that means the configuration is wrong."""


class InsiderBadRequestError(InsiderError):
    """Insider refused the request body (not retried)."""

    @override
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

    @override
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


class InsiderClient:
    """Sends upsert requests; safe to use from several threads."""

    def __init__(
        self,
        *,
        upsert_url: str,
        partner_name: str,
        api_key: str,
        policy: RetryPolicy,
        stats: RunStats,
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
            policy: Timeout, retries, backoff and their time budget per request.
            stats: Run statistics (requests, retries).
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
        self.policy = policy
        self.stats = stats
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
        started = self._clock()
        attempt = 1
        while True:
            self.stats.add(requests_sent=1)
            outcome = self._attempt(body, attempt)
            if isinstance(outcome, UpsertResponse):
                return outcome
            self._wait_before_retry(*outcome, started)
            attempt += 1

    def _attempt(
        self, body: bytes, attempt: int
    ) -> UpsertResponse | tuple[InsiderRequestFailedError, float | None]:
        """Send once.

        Returns:
            The response, or a retryable failure and the wait the server asked for.

        Raises:
            InsiderRequestFailedError: The request cannot be sent (not transient).
        """
        try:
            response = self._session().post(
                self.upsert_url,
                data=body,
                headers=self._headers,
                timeout=self.policy.request_timeout,
            )
        except TRANSIENT_EXCEPTIONS as exc:
            reason = (
                Undelivered.TIMEOUT
                if isinstance(exc, requests.Timeout)
                else Undelivered.CONNECTION_ERROR
            )
            problem = f"{type(exc).__name__} (no response)"
            return InsiderRequestFailedError(problem, None, attempt, reason), None
        except requests.RequestException as exc:
            # Not transient (e.g. invalid URL or too many redirects): do not retry.
            raise InsiderRequestFailedError(
                f"{type(exc).__name__}: request could not be sent",
                None,
                attempt,
                Undelivered.CANNOT_SEND,
            ) from None
        return self._judge(response, attempt)

    def _judge(
        self, response: requests.Response, attempt: int
    ) -> UpsertResponse | tuple[InsiderRequestFailedError, float | None]:
        """Turn the status policy's verdict on one answer into a result or an error."""
        status = response.status_code
        message = error_message(response)
        match status_policy.verdict(status, message):
            case Verdict.DELIVERED:
                parsed = parse_upsert_response(status, response.text)
                if parsed is None:  # not retried: a retry would most likely get the same page
                    raise InsiderRequestFailedError(
                        status_policy.unconfirmed_hint(status, message),
                        status,
                        attempt,
                        Undelivered.UNCONFIRMED,
                    )
                return parsed
            case Verdict.RETRY:
                reason = status_policy.undelivered_reason(status)
                failure = InsiderRequestFailedError(
                    f"HTTP {status}: {message}", status, attempt, reason
                )
                return failure, requested_wait(response)
            case Verdict.FAIL_FAST:
                hint = status_policy.upsert_credentials_hint(status, message, self.partner_name)
                raise InsiderAuthError(hint, status)
            case Verdict.SPLIT | Verdict.DEAD_LETTER as verdict:
                raise InsiderBadRequestError(message, status, too_large=verdict is Verdict.SPLIT)
            case _:
                hint = status_policy.wrong_endpoint_hint(status, message, self.upsert_url)
                raise InsiderConfigError(hint, status)

    def _wait_before_retry(
        self, failure: InsiderRequestFailedError, requested: float | None, started: float
    ) -> None:
        """Sleep before the next attempt, or give up.

        Args:
            failure: The attempt that just failed, as it would be reported.
            requested: Seconds the server asked for, if any.
            started: When the first attempt started (``clock`` time).

        Raises:
            InsiderRequestFailedError: Retries or their budget exhausted, or the run stopped.
        """
        attempt = failure.attempts
        wait = self.policy.wait(attempt - 1, requested)
        elapsed = self._clock() - started
        give_up = self.policy.give_up_reason(attempt - 1, elapsed, wait)
        if give_up:
            raise InsiderRequestFailedError(
                f"{failure.message}; gave up after {attempt} attempts in {elapsed:.0f}s "
                f"({give_up})",
                failure.status,
                attempt,
                failure.reason,
            )
        self.stats.add(retries=1)
        LOGGER.warning(
            "Insider upsert attempt %d/%d failed (%s); retrying in %.2fs",
            attempt,
            self.policy.max_retries + 1,
            failure.message,
            wait,
        )
        self._sleep(wait)
        if self._stop.is_set():
            raise InsiderRequestFailedError(
                f"{failure.message}; the run stopped while it was being retried",
                failure.status,
                attempt,
                Undelivered.RUN_STOPPED,
            )
