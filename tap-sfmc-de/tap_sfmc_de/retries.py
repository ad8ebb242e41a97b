"""The retry policy: how long to wait before retrying a request, and when to give up.

One rule reads a server-requested wait (``Retry-After`` header or SFMC's ``retryAfter``
body field, see :func:`parse_retry_after`); one cap bounds any such wait
(``max_retry_after_seconds``), and one budget bounds the total waiting per request
(``max_retries`` attempts and ``retry_budget_seconds``), so no header can stall a run.
Each field of :class:`RetryPolicy` is the setting of the same name; its default and bounds
are in :mod:`tap_sfmc_de.config_schema` only.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

_DELTA_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")  # ASCII only: float() also takes "١٢"


def parse_retry_after(value: object, now: dt.datetime) -> float | None:
    """Seconds a server asks to wait: the one rule for ``Retry-After`` and ``retryAfter``.

    Accepted: non-negative seconds (a JSON number, or digits with an optional fraction)
    and an HTTP date (a date in the past means "now"). Anything else - negative, NaN,
    ``inf`` as text, booleans, garbage - is ignored (None), so the caller's own backoff
    applies. A huge value is returned as is; :meth:`RetryPolicy.wait` caps it.

    Args:
        value: The header text or the body field, as received.
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
    def from_config(cls, config: Mapping[str, Any]) -> RetryPolicy:
        """The policy the validated config describes: one field per setting of that name.

        Args:
            config: The config with the schema's defaults filled in
                (:func:`tap_sfmc_de.settings.schema_checked`); defaults live there only.

        Returns:
            The policy.
        """
        return cls(**{f.name: config[f.name] for f in fields(cls)})

    def backoff(self, attempt: int, factor: float = 1.0) -> float:
        """Exponential backoff with equal jitter: in [0.5, 1] of the capped nominal delay.

        The same rule as target-insider-one's: half fixed, half random, so a delay never
        exceeds ``backoff_max_seconds`` (times ``factor``), as that setting documents.

        Args:
            attempt: 0-based attempt that just failed.
            factor: Multiplier (4 for errorcode 50200).

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
            waited: Seconds this request already waited between attempts.
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
