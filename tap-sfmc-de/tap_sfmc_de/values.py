"""Conversion of SFMC's all-string row values into typed JSON values.

Policy (documented in the README): a value that does not parse, or does not fit its type
(a date that cannot be expressed in UTC, a number beyond 64 bits, text that is not valid
Unicode), becomes ``null`` and is reported (stream, row key digest, field, what was
expected) as a warning, except for primary-key fields and the replication key, where a bad
value fails the sync with the same details, because emitting such a row would corrupt the
target's keys or the bookmark. ``ConversionProblemError`` is the only error a converter
raises. Raw values are never logged: they may be personal data, so messages never quote them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

UTC = dt.UTC
_OFFSET_RE = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_LAST_UTC_INSTANT = dt.datetime.max.replace(tzinfo=UTC)
_TRUE = frozenset({"true", "1", "y", "yes"})
_FALSE = frozenset({"false", "0", "n", "no"})
# Number is emitted as a JSON integer: keep it within 64 bits, what every consumer can hold.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# SFMC Decimal is SQL decimal(p, s) with p <= 38: anything larger is not a Decimal value.
DECIMAL_MAX_DIGITS = 38
_SURROGATES = re.compile("[\ud800-\udfff]")
# The one shape SFMC writes Date values in; ASCII digits only (others take the slow path).
_CANONICAL_RE = re.compile(
    r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}) ([0-9]{1,2}):([0-9]{2}):([0-9]{2}) ([AP])M"
)


class ConversionProblemError(ValueError):
    """A single value could not be converted; the message says what was expected."""


def parse_offset(text: str) -> dt.timezone:
    """Parse a fixed UTC offset such as ``-06:00``.

    Args:
        text: The offset, ``+HH:MM`` or ``-HH:MM``.

    Returns:
        A fixed-offset timezone (never a daylight-saving zone).

    Raises:
        ValueError: If the text is not a valid fixed offset.
    """
    match = _OFFSET_RE.match(text or "")
    if not match:
        msg = f"sfmc_timezone_offset must look like -06:00 (fixed offset, no DST); got {text!r}"
        raise ValueError(msg)
    sign, hours, minutes = match.groups()
    delta = dt.timedelta(hours=int(hours), minutes=int(minutes))
    if delta >= dt.timedelta(hours=15) or int(minutes) >= 60:  # noqa: PLR2004
        msg = f"sfmc_timezone_offset out of range: {text!r}"
        raise ValueError(msg)
    return dt.timezone(-delta if sign == "-" else delta)


def parse_sfmc_datetime(text: str, tz: dt.tzinfo) -> dt.datetime:
    """Parse SFMC's ``M/d/yyyy h:mm:ss AM`` wall-clock format in the given offset.

    Hand-written parsers because ``strptime`` dominates the per-row cost at 100k rows:
    the exact form SFMC sends takes a fast path, anything else the lenient one.

    Args:
        text: The value as SFMC sends it (no zone).
        tz: The fixed offset SFMC's values are stored in.

    Returns:
        An aware datetime.

    Raises:
        ConversionProblemError: If the text is not in that format.
    """
    local = _parse_canonical(text)
    if local is not None:
        return local.replace(tzinfo=tz)
    return _parse_lenient(text, tz)


def _parse_canonical(text: str) -> dt.datetime | None:
    """The naive wall-clock time of ``M/d/yyyy h:mm:ss AM`` exactly as SFMC writes it.

    Returns:
        None for any other shape (or an invalid date): :func:`_parse_lenient` decides.
    """
    match = _CANONICAL_RE.fullmatch(text)
    if match is None:
        return None
    month, day, year, hour, minute, second, marker = match.groups()
    hour12 = int(hour)
    if not 1 <= hour12 <= 12:  # noqa: PLR2004
        return None
    hour24 = hour12 % 12 + (12 if marker == "P" else 0)
    try:
        # Naive on purpose: the caller attaches the zone, or shifts to UTC by the offset.
        return dt.datetime(int(year), int(month), int(day), hour24, int(minute), int(second))  # noqa: DTZ001
    except ValueError:
        return None


def _parse_lenient(text: str, tz: dt.tzinfo) -> dt.datetime:
    parts = text.strip().split()
    try:
        month, day, year = (int(p) for p in parts[0].split("/"))
        hour = minute = second = 0
        if len(parts) >= 2:  # noqa: PLR2004
            hms = parts[1].split(":")
            hour, minute = int(hms[0]), int(hms[1])
            second = int(float(hms[2])) if len(hms) > 2 else 0  # noqa: PLR2004
        if len(parts) == 3:  # noqa: PLR2004
            marker = parts[2].upper()
            if marker not in {"AM", "PM"} or not 1 <= hour <= 12:  # noqa: PLR2004
                raise ConversionProblemError("bad AM/PM hour")
            hour = hour % 12 + (12 if marker == "PM" else 0)
        elif len(parts) > 3:  # noqa: PLR2004
            raise ConversionProblemError("too many parts")
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=tz)
    except (ValueError, IndexError, OverflowError) as exc:  # OverflowError: seconds "inf"
        return _parse_iso_fallback(text, tz, exc)


def _parse_iso_fallback(text: str, tz: dt.tzinfo, cause: Exception) -> dt.datetime:
    # Some tools write ISO strings into DEs; accept them rather than drop the value.
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        msg = "expected a date like 5/8/2024 3:04:05 PM"
        raise ConversionProblemError(msg) from cause
    return value if value.tzinfo else value.replace(tzinfo=tz)


def to_utc_text(value: dt.datetime) -> str:
    """Render a parsed Date value as the bookmark format, if UTC can hold it.

    Args:
        value: Aware datetime from :func:`parse_sfmc_datetime`.

    Returns:
        ISO-8601 in UTC (see :func:`to_bookmark`).

    Raises:
        ConversionProblemError: If the value lies outside years 1-9999 once shifted to
            UTC, e.g. SFMC's "end of time" sentinel 12/31/9999 11:59:59 PM in UTC-6.
    """
    try:
        return to_bookmark(value)
    except OverflowError:
        msg = "expected a date that stays within years 1-9999 in UTC (is it an end-of-time value?)"
        raise ConversionProblemError(msg) from None


def is_beyond_utc(value: dt.datetime) -> bool:
    """Whether an aware datetime is later than the last instant UTC can represent.

    Args:
        value: Aware datetime.

    Returns:
        True for values such as 12/31/9999 11:59:59 PM in UTC-6.
    """
    # Offsets stay under a day, so only a value in year 9999 can lie beyond (cheap test first).
    return value.year >= 9999 and value > _LAST_UTC_INSTANT  # noqa: PLR2004


def format_sfmc_datetime(value: dt.datetime, tz: dt.tzinfo) -> str:
    """Format an aware datetime as SFMC's ``M/d/yyyy h:mm:ss AM`` in the given offset.

    Args:
        value: Aware datetime.
        tz: SFMC's fixed offset.

    Returns:
        The literal SFMC itself returns, for use in ``$filter``.
    """
    local = value.astimezone(tz)
    hour12 = local.hour % 12 or 12
    marker = "PM" if local.hour >= 12 else "AM"  # noqa: PLR2004
    return (
        f"{local.month}/{local.day}/{local.year} "
        f"{hour12}:{local.minute:02d}:{local.second:02d} {marker}"
    )


def to_bookmark(value: dt.datetime) -> str:
    """Render the one bookmark format used everywhere: ``2024-05-08T21:04:05+00:00``.

    Args:
        value: Aware datetime.

    Returns:
        ISO-8601 in UTC with seconds precision.
    """
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def from_bookmark(text: str) -> dt.datetime:
    """Parse a bookmark or ``start_date``; naive values are taken as UTC.

    Args:
        text: ISO-8601 text.

    Returns:
        Aware UTC datetime.
    """
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_integer(text: str) -> int:
    """Convert a Number value.

    Args:
        text: Raw value.

    Returns:
        The integer.

    Raises:
        ConversionProblemError: If it is not a whole number within 64 bits.
    """
    try:
        number: int | Decimal = int(text)  # the common case, and the fast one
    except ValueError:
        try:
            number = Decimal(text.strip())
        except InvalidOperation as exc:
            raise ConversionProblemError("expected a whole number") from exc
    if isinstance(number, Decimal) and (
        not number.is_finite() or number != number.to_integral_value()
    ):
        raise ConversionProblemError("expected a whole number")
    # Compare before int(): int(Decimal("1e999999999")) would build a gigantic integer.
    if not INT_MIN <= number <= INT_MAX:
        raise ConversionProblemError("expected a whole number within 64 bits")
    return int(number)


def to_decimal(text: str) -> Decimal:
    """Convert a Decimal value exactly (no float rounding).

    Args:
        text: Raw value.

    Returns:
        The Decimal.

    Raises:
        ConversionProblemError: If it is not a finite decimal number of at most 38 digits.
    """
    try:
        number = Decimal(text.strip())
    except InvalidOperation as exc:
        raise ConversionProblemError("expected a decimal number") from exc
    if not number.is_finite():
        raise ConversionProblemError("expected a finite decimal number")
    # A text of at most 38 characters cannot hold more digits: skip building the tuple.
    if (
        len(text) > DECIMAL_MAX_DIGITS and len(number.as_tuple().digits) > DECIMAL_MAX_DIGITS
    ) or abs(number.adjusted()) >= DECIMAL_MAX_DIGITS:
        raise ConversionProblemError("expected a decimal number of at most 38 digits")
    return number


def to_text(text: str) -> str:
    """Convert a Text, EmailAddress, Phone or Locale value (kept as is).

    Args:
        text: Raw value.

    Returns:
        The same text.

    Raises:
        ConversionProblemError: If it holds a lone surrogate, which no UTF-8 consumer can
            read (JSON escapes let one through from the API).
    """
    if not text.isascii() and _SURROGATES.search(text):
        raise ConversionProblemError("expected valid Unicode text (found a lone surrogate)")
    return text


def to_boolean(text: str) -> bool:
    """Convert a Boolean value (``True``/``False``, also 1/0, y/n, yes/no).

    Args:
        text: Raw value.

    Returns:
        The boolean.

    Raises:
        ConversionProblemError: If it is not a recognised boolean.
    """
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConversionProblemError("expected True or False")


class DateColumn:
    """The Date values of one column: parsed (for the window) and rendered in UTC.

    A replication-key value is parsed for the window check and then converted for the
    record: the column keeps its last parse, so each value is parsed once.
    """

    def __init__(self, tz: dt.tzinfo) -> None:
        """Set up.

        Args:
            tz: SFMC's fixed offset.
        """
        self.tz = tz
        self._last: tuple[str | None, dt.datetime | None] = (None, None)

    def parse(self, text: str) -> dt.datetime:
        """As :func:`parse_sfmc_datetime`.

        Args:
            text: Raw value.

        Returns:
            An aware datetime.
        """
        local = self._canonical(text)
        return _parse_lenient(text, self.tz) if local is None else local.replace(tzinfo=self.tz)

    def utc_text(self, text: str) -> str:
        """As :func:`to_utc_text` of :func:`parse_sfmc_datetime`.

        Args:
            text: Raw value.

        Returns:
            ISO-8601 in UTC.
        """
        local = self._canonical(text)
        offset = None if local is None else self.tz.utcoffset(local)
        if local is None or offset is None:
            return to_utc_text(self.parse(text))
        try:
            # Naive arithmetic: the same instant as astimezone(UTC), at a third of the cost.
            return f"{(local - offset).isoformat()}+00:00"
        except OverflowError:
            return to_utc_text(local.replace(tzinfo=self.tz))  # raises with the message

    def _canonical(self, text: str) -> dt.datetime | None:
        last, local = self._last
        if text is not last:  # the same string object: the value just parsed
            local = _parse_canonical(text)
            self._last = (text, local)
        return local


# Text to typed value per JSON kind; looked up once per column, not once per value.
_FROM_TEXT: dict[str, Callable[[str], Any]] = {
    "string": to_text,
    "integer": to_integer,
    "number": to_decimal,
    "boolean": to_boolean,
}


@dataclass(frozen=True)
class FieldConverter:
    """Converts one column; ``kind`` is the JSON type the schema declares."""

    name: str
    kind: str  # "string" | "integer" | "number" | "boolean" | "date-time"
    tz: dt.tzinfo
    # Non-empty text to the typed value (what ``convert`` does once NULL is ruled out).
    from_text: Callable[[str], Any] = field(init=False, repr=False, compare=False)

    dates: DateColumn | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Pick the conversion of this column's kind once."""
        dates = DateColumn(self.tz) if self.kind == "date-time" else None
        if dates is not None:
            from_text = dates.utc_text
        else:
            from_text = _FROM_TEXT.get(self.kind, partial(_unsupported, self.kind))
        object.__setattr__(self, "dates", dates)
        object.__setattr__(self, "from_text", from_text)

    def convert(self, raw: Any) -> Any:
        """Convert one raw value.

        Args:
            raw: The value from the rowset (normally a string).

        Returns:
            The typed value, or None for SFMC's empty-string NULL.

        Raises:
            ConversionProblemError: If the value does not parse.
        """
        if raw is None or raw == "":
            return None
        return self.from_text(raw if isinstance(raw, str) else str(raw))


def _unsupported(kind: str, text: str) -> Any:  # noqa: ARG001
    raise ConversionProblemError(f"unsupported kind {kind}")
