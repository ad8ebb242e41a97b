"""Edge values the generator can plant: what SFMC could plausibly send, at its limits.

Values are in *stored* form (see ``fields.py``). Typed columns only hold what their
type allows, so the catalogue per type is what SFMC can store: extreme dates (year
9999, .NET's year 1, SQL Server's 1753 minimum), int32 limits, full-precision decimals,
and text with control characters, line/paragraph separators, astral characters,
replacement characters (a lone surrogate written by a .NET JSON serializer comes out
as U+FFFD in UTF-8), full-length strings, and text that looks like another type.

``wire_garbage`` adds values a typed column would *not* hold (``NaN`` in a Number,
``2/30/2020`` in a Date, ``yes`` in a Boolean): they are stored raw and sent as they
are, for clients that must survive a value that does not fit the declared type.
"""

from __future__ import annotations

from typing import Any

from api_sandbox import sfmc_time
from api_sandbox.fields import RAW_PREFIX, TEXT_TYPES, Field

YEAR_9999 = "9999-12-31T23:59:59"  # wire: 12/31/9999 11:59:59 PM
YEAR_1 = "0001-01-01T00:00:00"  # wire: 1/1/0001 12:00:00 AM
SQL_MIN = "1753-01-01T00:00:00"  # SQL Server datetime minimum
EXTREME_DATES = (YEAR_9999, YEAR_1, SQL_MIN, "1900-01-01T00:00:00", "2024-02-29T23:59:59")

_TEXT = (
    "ctl\x00\x01\x08\x0b\x0c\x1b\x1f\x7fend",
    "line\u2028para\u2029end",
    "tab\tnew\nline\rreturn",
    " True",  # observed: stray leading spaces kept as stored
    "NaN",
    "1e309",
    "True",
    "null",
    "\ufffd lone surrogate replaced",
    "😀𝄞 astral \U0010ffff",
    "e\u0301 combining \u200b\ufeff zero-width",
    '{"json": [1, "x"]}\\',
)
_LONG_UNIT = "Ω€😀x"  # 2-, 3- and 4-byte UTF-8 characters
_GARBAGE = {
    "Number": ("NaN", "1e309", "-0", "1.5", " 42", "Infinity", "9223372036854775808"),
    "Decimal": ("NaN", "Infinity", "1e309", "1,5", "--1"),
    "Date": (
        "2/30/2020 12:00:00 AM",
        "0/0/0000 12:00:00 AM",
        "13/45/2020 25:61:61 PM",
        "2020-02-30T00:00:00",
        "now",
    ),
    "Boolean": ("yes", "1", "True ", "maybe", "FALSE"),
}


def long_text(length: int) -> str:
    """A string of exactly ``length`` characters mixing multi-byte characters."""
    return (_LONG_UNIT * (length // len(_LONG_UNIT) + 1))[:length]


def catalogue(field: Field, *, wire_garbage: bool) -> list[Any]:
    """Edge values for a column, in stored form (None = empty on the wire)."""
    kind = field.field_type
    if kind in TEXT_TYPES:
        limit = field.max_length or 4000
        values: list[Any] = [v[:limit] for v in _TEXT]
        values += [long_text(limit), None]
    elif kind == "Number":
        values = [2_147_483_647, -2_147_483_648, 0, -1, None]
    elif kind == "Decimal":
        top = 10 ** (field.max_length or 18) - 1
        values = [top, -top, 0, 1, None]
    elif kind == "Boolean":
        values = [1, 0, None]
    else:
        values = [sfmc_time.parse_datetime(d) for d in EXTREME_DATES] + [None]
    if wire_garbage and kind in _GARBAGE:
        values += [RAW_PREFIX + v for v in _GARBAGE[kind]]
    if field.is_required:
        values = [v for v in values if v is not None]
    return values


def key_catalogue(field: Field, *, wire_garbage: bool) -> list[Any]:
    """Edge values for the replication-key (ModifiedDate) column."""
    values: list[Any] = [sfmc_time.parse_datetime(d) for d in (YEAR_9999, YEAR_1, SQL_MIN)]
    if not field.is_required:
        values.append(None)
    if wire_garbage:
        values += [RAW_PREFIX + v for v in _GARBAGE["Date"][:2]]
    return values


def offsets(count: int, n: int, *, phase: float = 0.0) -> list[int]:
    """``n`` row offsets spread evenly over ``count`` rows (deterministic)."""
    n = min(n, count)
    return sorted({int((k + phase) * count / n) % count for k in range(n)}) if n else []
