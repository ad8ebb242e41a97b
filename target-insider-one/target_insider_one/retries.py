"""The retry policy: how long to wait before retrying an upsert, and when to give up.

The same shape and the same ``Retry-After`` rule as tap-sfmc-de's ``tap_sfmc_de.retries``
(the plugins are separate packages, so each has its copy; ``tests/test_retries.py`` checks
that both read the same table of header values the same way):

- :func:`parse_retry_after` accepts non-negative delta-seconds (ASCII digits, optional
  fraction) and HTTP dates (a date in the past means "now"); anything else is ignored.
- :meth:`RetryPolicy.wait` honours the server's wait plus up to 0.1 s of jitter, capped at
  ``max_retry_after_seconds`` (300 s: no header can stall a run); without one, the
  exponential backoff applies.
- :meth:`RetryPolicy.give_up_reason` stops after ``max_retries`` retries, or when the next
  wait would end past ``retry_budget_seconds``.

One difference is deliberate: the target's backoff keeps "equal jitter" (half fixed, half
random), so a delay never exceeds ``backoff_max_seconds``, as that setting documents.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests

    from target_insider_one.settings import Settings

# Documented in backoff_base_seconds' description; the tap makes it a setting.
RETRY_AFTER_CAP_SECONDS = 300.0
_DELTA_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")  # ASCII only: float() also takes "١٢"


def parse_retry_after(value: object, now: dt.datetime) -> float | None:
    """Seconds a server asks to wait, from a ``Retry-After`` value.

    Accepted: non-negative seconds (a JSON number, or digits with an optional fraction)
    and an HTTP date (a date in the past means "now"). Anything else - negative, NaN,
    ``inf`` as text, booleans, garbage - is ignored (None), so the backoff applies. A huge
    value is returned as is; :meth:`RetryPolicy.wait` caps it.

    Args:
        value: The header text, as received.
        now: The server's clock (its ``Date`` header) or ours, as aware UTC.

    Returns:
        Seconds (>= 0, possibly ``inf``), or None when the value says nothing usable.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not _DELTA_SECONDS.fullmatch(text):
            return _seconds_until(text, now)
        value = float(text)  # may be inf for hundreds of digits: capped later
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond float range
        seconds = math.inf if value > 0 else -1.0
    if math.isnan(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until(text: str, now: dt.datetime) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, origin unknown (RFC 5322)
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def requested_wait(response: requests.Response) -> float | None:
    """The wait a response asks for, read against the response's own ``Date`` if any.

    Args:
        response: A retryable response (429, 5xx, 403 "Request Limit Exceeded").

    Returns:
        Seconds (uncapped), or None when the server said nothing usable.
    """
    now = _response_date(response) or dt.datetime.now(dt.UTC)
    return parse_retry_after(response.headers.get("Retry-After"), now)


def _response_date(response: requests.Response) -> dt.datetime | None:
    header = response.headers.get("Date")
    if not header:
        return None
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried (exponential backoff with jitter, bounded)."""

    max_retries: int
    backoff_base_seconds: float
    backoff_max_seconds: float
    request_timeout: float
    max_retry_after_seconds: float
    retry_budget_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy the settings describe.

        Args:
            settings: Validated settings.

        Returns:
            The policy.
        """
        return cls(
            max_retries=settings.max_retries,
            backoff_base_seconds=settings.backoff_base_seconds,
            backoff_max_seconds=settings.backoff_max_seconds,
            request_timeout=settings.request_timeout,
            max_retry_after_seconds=RETRY_AFTER_CAP_SECONDS,
            retry_budget_seconds=settings.retry_budget_seconds,
        )

    def backoff(self, attempt: int, factor: float = 1.0) -> float:
        """Exponential backoff with equal jitter: in [0.5, 1] of the capped nominal delay.

        Args:
            attempt: 0-based attempt that just failed.
            factor: Multiplier (1: Insider has no "back off harder" signal).

        Returns:
            Seconds to wait.
        """
        nominal = self.backoff_base_seconds * (2**attempt) * factor
        capped = min(nominal, self.backoff_max_seconds * factor)
        return capped / 2 + random.uniform(0, capped / 2)

    def wait(self, attempt: int, requested: float | None, factor: float = 1.0) -> float:
        """Seconds to wait before the next attempt.

        Args:
            attempt: 0-based attempt that just failed.
            requested: What the server asked for (:func:`parse_retry_after`), if anything.
            factor: Backoff multiplier when the server did not say.

        Returns:
            The server's wait plus a little jitter, capped at ``max_retry_after_seconds``;
            otherwise the backoff.
        """
        if requested is None:
            return self.backoff(attempt, factor)
        return min(requested + random.uniform(0, 0.1), self.max_retry_after_seconds)

    def give_up_reason(self, attempt: int, waited: float, wait: float) -> str | None:
        """Why the request must fail now rather than wait again, if it must.

        Args:
            attempt: 0-based attempt that just failed.
            waited: Seconds this request already took (the target counts from its first
                attempt, so no retry starts later than ``retry_budget_seconds`` after it).
            wait: The next wait.

        Returns:
            A reason for the error message, or None to retry.
        """
        if attempt >= self.max_retries:
            return f"max_retries {self.max_retries} used"
        if waited + wait > self.retry_budget_seconds:
            return (
                f"waiting {wait:.0f}s more would exceed retry_budget_seconds "
                f"{self.retry_budget_seconds:g}"
            )
        return None
