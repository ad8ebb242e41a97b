"""SFMC "system time": fixed UTC-6 wall clock, no daylight saving.

Date values are stored as whole seconds since 1970-01-01 00:00:00 *of the SFMC
wall clock* (i.e. the naive UTC-6 time read as if it were UTC). Keeping them naive
makes formatting cheap (no tz arithmetic per row) and mirrors the platform, which
stores dates without an offset.
"""

from __future__ import annotations

import functools
import re
import time
from datetime import UTC, datetime, timedelta, timezone

SYSTEM_OFFSET = timedelta(hours=-6)
SYSTEM_OFFSET_SECONDS = int(SYSTEM_OFFSET.total_seconds())
SYSTEM_TZ = timezone(SYSTEM_OFFSET)
_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - naive on purpose, see module docstring

_US_RE = re.compile(
    r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?\s*$"
)
_ISO_RE = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)


def now_system_seconds() -> int:
    """The sandbox "now" as SFMC wall-clock seconds (second precision)."""
    return int(time.time()) + int(SYSTEM_OFFSET.total_seconds())


def to_naive(seconds: int) -> datetime:
    """Convert stored seconds to a naive SFMC wall-clock datetime."""
    return _EPOCH + timedelta(seconds=seconds)


def from_naive(value: datetime) -> int:
    """Convert a naive SFMC wall-clock datetime to stored seconds."""
    return int((value - _EPOCH).total_seconds())


def format_us(seconds: int) -> str:
    """Format like the platform does: ``M/d/yyyy h:mm:ss AM`` with no offset."""
    # This runs for every Date cell of every served page (a quarter of the sandbox's CPU
    # per page): the date and the clock parts are each formatted once and remembered.
    day, clock = divmod(seconds, _DAY_SECONDS)
    return _format_day(day) + _format_clock(clock)


_DAY_SECONDS = 86_400


@functools.lru_cache(maxsize=1 << 16)
def _format_day(day: int) -> str:
    t = time.gmtime(day * _DAY_SECONDS)
    return f"{t.tm_mon}/{t.tm_mday}/{t.tm_year:04d} "


@functools.lru_cache(maxsize=_DAY_SECONDS)
def _format_clock(clock: int) -> str:
    hours, rest = divmod(clock, 3600)
    minutes, secs = divmod(rest, 60)
    half = "AM" if hours < 12 else "PM"  # noqa: PLR2004 - noon
    return f"{hours % 12 or 12}:{minutes:02d}:{secs:02d} {half}"


def format_iso(seconds: int) -> str:
    """ISO-8601 with the explicit -06:00 offset (used by the admin rows endpoint)."""
    return to_naive(seconds).isoformat() + "-06:00"


def parse_datetime(text: str) -> int:
    """Parse a date literal into stored seconds.

    Accepts ``M/d/yyyy[ h:mm[:ss] [AM|PM]]`` (SFMC system time) and ISO-8601. Naive ISO
    values are taken as SFMC system time; values with ``Z`` or an offset are converted.

    Raises:
        ValueError: when the text is not a recognised date.
    """
    return parse_datetime_with_offset(text)[0]


def parse_datetime_with_offset(text: str) -> tuple[int, bool]:
    """Like ``parse_datetime``, also telling whether the literal named its zone.

    Raises:
        ValueError: when the text is not a recognised date.
    """
    m = _US_RE.match(text)
    if m:
        month, day, year = int(m[1]), int(m[2]), int(m[3])
        hour, minute, second = int(m[4] or 0), int(m[5] or 0), int(m[6] or 0)
        half = (m[7] or "").upper()
        if half:
            if not 1 <= hour <= 12:  # noqa: PLR2004 - 12-hour clock
                raise ValueError(f"bad hour in {text!r}")
            hour = hour % 12 + (12 if half == "PM" else 0)
        return from_naive(datetime(year, month, day, hour, minute, second)), False  # noqa: DTZ001
    m = _ISO_RE.match(text)
    if m:
        naive = datetime(  # noqa: DTZ001 - naive SFMC wall clock
            int(m[1]), int(m[2]), int(m[3]), int(m[4] or 0), int(m[5] or 0), int(m[6] or 0)
        )
        zone = m[7]
        if zone:
            if zone == "Z":
                offset = timedelta(0)
            else:
                digits = zone[1:].replace(":", "")
                offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
                if zone[0] == "-":
                    offset = -offset
            aware = naive.replace(tzinfo=timezone(offset))
            naive = (aware - offset + SYSTEM_OFFSET).replace(tzinfo=None)
        return from_naive(naive), bool(zone)
    raise ValueError(f"not a date: {text!r}")


def utc_naive_iso(seconds_from_now: float) -> str:
    """Naive UTC timestamp with milliseconds, like ``tokenExpireDateUtc``."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds")
