"""HTTP session and the retry loop.

What each answer means (retry, re-mint the token once, fail) is decided by
:func:`tap_sfmc_de.status_policy.classify`; timeouts, dropped connections and truncated
bodies are retried too. How long to wait and when to give up is
:class:`tap_sfmc_de.retries.RetryPolicy`. Messages never include request bodies, headers
or tokens.

Thread safety (pages are prefetched on worker threads, :mod:`tap_sfmc_de.prefetch`): each
thread sends through its own ``requests.Session`` (sessions are not thread-safe), and
every REST attempt holds a slot of the client's :class:`ConcurrencyGate`, which a 429
errorcode 50200 lowers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import msgspec
import requests

from tap_sfmc_de.concurrency_gate import ConcurrencyGate
from tap_sfmc_de.errors import RetriesExhaustedError, SfmcApiError, TokenExpiredError
from tap_sfmc_de.retries import RetryPolicy, response_date
from tap_sfmc_de.status_policy import Action, Decision, Endpoint, classify

__all__ = ["Endpoint", "HttpClient", "build_query", "classify", "json_body", "response_date"]

LOGGER = logging.getLogger("tap-sfmc-de.http")
_NOT_DECODED = object()
USER_AGENT = "tap-sfmc-de/0.1"
TRANSIENT_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


@dataclass
class HttpClient:
    """A requests session per thread plus the retry loop, REST attempts through a gate."""

    policy: RetryPolicy
    session: requests.Session = field(default_factory=requests.Session)
    sleep: Callable[[float], None] = time.sleep
    logger: logging.Logger = LOGGER
    gate: ConcurrencyGate = field(default_factory=ConcurrencyGate)
    _owner: int = field(init=False, default_factory=threading.get_ident)
    _local: threading.local = field(init=False, default_factory=threading.local)

    def __post_init__(self) -> None:
        """Set the User-Agent; the gate logs where the client logs."""
        self.session.headers["User-Agent"] = USER_AGENT
        self.gate.logger = self.logger

    def _session(self) -> requests.Session:
        """``session`` on the thread that made the client, a session of its own on others."""
        if threading.get_ident() == self._owner:
            return self.session
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update(self.session.headers)
        return session

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
            kind: The :class:`~tap_sfmc_de.status_policy.Endpoint` (selects error handling).
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
            decision, response = self._gated_attempt(method, url, kind, prepare)
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

    def _gated_attempt(
        self,
        method: str,
        url: str,
        kind: str,
        prepare: Callable[[], Mapping[str, Any]],
    ) -> tuple[Decision, requests.Response | None]:
        # SFMC counts concurrent REST requests (50200); token and SOAP calls stay ungated.
        if kind != Endpoint.REST:
            return self._attempt(method, url, kind, prepare)
        with self.gate.slot() as admitted_under:
            decision, response = self._attempt(method, url, kind, prepare)
        if decision.blocked:
            self.gate.blocked(admitted_under)
        return decision, response

    def _attempt(
        self,
        method: str,
        url: str,
        kind: str,
        prepare: Callable[[], Mapping[str, Any]],
    ) -> tuple[Decision, requests.Response | None]:
        kwargs = {"url": url, **prepare()}
        try:
            response = self._session().request(
                method, timeout=self.policy.request_timeout, **kwargs
            )
            decision = classify(response, kind)
            if decision.action == Action.OK and kind != Endpoint.SOAP:
                decoded_json(response)  # a dropped connection can leave a truncated body
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
        body = decoded_json(response)
    except json.JSONDecodeError as exc:
        raise SfmcApiError("SFMC returned a body that is not JSON") from exc
    if not isinstance(body, dict):
        raise SfmcApiError("SFMC returned JSON that is not an object")
    return body


def decoded_json(response: requests.Response) -> Any:
    """The body's JSON, decoded once per response (a rowset page is ~1 MB of it).

    msgspec decodes UTF-8 RFC 8259 JSON several times faster than requests' decoder;
    what it refuses (escaped lone surrogates, NaN, another charset) goes to
    ``response.json()`` as before, so every body decodes as it always did.

    Args:
        response: A response.

    Returns:
        The decoded JSON.

    Raises:
        ValueError: When the body is not JSON (what ``response.json()`` raises).
    """
    body = getattr(response, "_decoded_json", _NOT_DECODED)
    if body is _NOT_DECODED:
        body = _decode(response)
        response._decoded_json = body  # ty:ignore[unresolved-attribute]
    return body


def _decode(response: requests.Response) -> Any:
    try:
        if (response.encoding or "utf-8").lower() in {"utf-8", "utf8"}:
            try:
                return msgspec.json.decode(response.content)
            except (msgspec.DecodeError, UnicodeDecodeError):
                pass
        return response.json()
    except RecursionError:
        # Both decoders give up on very deep nesting ("[" x 200,000) with a RecursionError,
        # which is no ValueError: the run would stop with a traceback, not retry the body.
        raise json.JSONDecodeError("JSON nested too deeply", "", 0) from None
