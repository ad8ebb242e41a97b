"""Conversions from Singer record values to the JSON types Insider expects.

Rules (documented in the README, "Value conversion"):

- ``None`` is never sent: the attribute is omitted.
- Empty / whitespace-only strings follow ``empty_string_policy``: ``omit`` (default) treats
  them like ``None``; ``send`` sends them unchanged to string attributes (typed attributes
  such as booleans or dates still omit them, because ``""`` is not a boolean or a date).
- Booleans: ``true/false``; strings ``true, t, yes, y, 1, on`` / ``false, f, no, n, 0, off``
  (any case); integers ``1`` / ``0``. Anything else is an invalid value.
- Numbers: integers stay integers; ``Decimal`` (what the SDK's reader produces for JSON
  numbers with a fraction) becomes ``int`` when the schema says integer, else ``float``;
  NaN and infinities are invalid; booleans are not numbers. Numeric strings are parsed.
- Dates and date-times: ``YYYY-MM-DDTHH:MM:SSZ`` in UTC, no fractional seconds. Naive values
  are taken as UTC; dates become midnight UTC. ``birthday`` keeps the calendar date as given
  (the time and offset are discarded) so a birthday never moves to the previous day.
- Arrays: lists of strings, numbers or booleans; objects are not supported by Insider
  user attributes (use the SDK's schema flattening).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from typing_extensions import override

from target_insider_one.config_schema import EmptyStringPolicy

_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})
_UTC = dt.UTC
_FOUR_DIGIT_YEAR = 1000
UTC_TEXT_LENGTH = len("2024-12-21T04:41:55+00:00")
"""Length of UTC date-time text as taps write it (``2024-12-21T04:41:55+00:00``)."""
_MAX_DECIMAL_EXPONENT = 308  # the largest finite double is about 1.8e308


class InvalidValueError(ValueError):
    """A source value that cannot be converted to the attribute's type."""

    @override
    def __init__(self, reason: str, message: str) -> None:
        """Create the error.

        Args:
            reason: Short reason code.
            message: Human-readable explanation (never contains the value).
        """
        super().__init__(message)
        self.reason = reason
        self.message = message


def is_empty(value: object, empty_string_policy: str = EmptyStringPolicy.OMIT) -> bool:
    """Whether a value counts as absent.

    Args:
        value: The source value.
        empty_string_policy: ``omit`` or ``send``.

    Returns:
        True for ``None``, and for blank strings / empty lists under ``omit``.
    """
    if value is None:
        return True
    if empty_string_policy == EmptyStringPolicy.OMIT:
        if isinstance(value, str):
            return not value.strip()
        if isinstance(value, list):
            return not value
    return False


def schema_kind(prop: Mapping[str, Any] | None) -> str:
    """Summarise a JSON-schema property as one kind.

    Args:
        prop: The property's JSON schema (may be ``None`` for unknown fields).

    Returns:
        One of ``boolean``, ``integer``, ``number``, ``date-time``, ``date``, ``string``,
        ``array``, ``object`` or ``any``.
    """
    if not prop:
        return "any"
    if "anyOf" in prop or "oneOf" in prop:
        options = [schema_kind(p) for p in prop.get("anyOf", prop.get("oneOf", []))]
        useful = [k for k in options if k not in {"any", "null"}]
        return useful[0] if useful else "any"
    types = prop.get("type", [])
    types = [t for t in ([types] if isinstance(types, str) else types) if t != "null"]
    first = types[0] if types else "any"
    if first == "string" and prop.get("format") in {"date-time", "date"}:
        return str(prop["format"])
    return first if first in _KINDS else "any"


_KINDS = frozenset({"boolean", "integer", "number", "array", "object", "string"})


def to_bool(value: object) -> bool:
    """Convert to a boolean.

    Args:
        value: Source value.

    Returns:
        The boolean.

    Raises:
        InvalidValueError: If the value is not a recognised boolean.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal) and value in {0, 1}:
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise InvalidValueError("not_a_boolean", "value is not a recognised boolean")


def to_number(value: object, *, integer: bool = False) -> int | float:
    """Convert to a JSON number.

    Args:
        value: Source value.
        integer: Whether the schema says integer (integral values become ``int``).

    Returns:
        An ``int`` or a finite ``float``.

    Raises:
        InvalidValueError: If the value is not a finite number.
    """
    if isinstance(value, bool):
        raise InvalidValueError("not_a_number", "booleans are not numbers")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidValueError("not_a_number", "value is not a number") from None
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidValueError("not_a_number", "value is not a finite number")
        if value and value.adjusted() > _MAX_DECIMAL_EXPONENT:
            # Beyond a double's range; int() of 1e999999999 would also exhaust memory.
            raise InvalidValueError("number_out_of_range", "number is too large to send")
        if value == value.to_integral_value() and (integer or value.as_tuple().exponent >= 0):
            return int(value)
        return float(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValueError("not_a_number", "value is not a finite number")
        if integer and value.is_integer():
            return int(value)
        return value
    raise InvalidValueError("not_a_number", f"{type(value).__name__} is not a number")


def to_integer(value: object) -> int | float:
    """:func:`to_number` for a field the schema says is an integer.

    Args:
        value: Source value.

    Returns:
        An ``int``, or a ``float`` for a value with a fraction.
    """
    return to_number(value, integer=True)


def _parse_temporal(value: object) -> dt.datetime | dt.date:
    if isinstance(value, dt.datetime | dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:  # noqa: PLR2004 - YYYY-MM-DD
                return dt.date.fromisoformat(text)
            return dt.datetime.fromisoformat(text)
        except ValueError:
            pass
    raise InvalidValueError("not_a_date", "value is not an ISO 8601 date or date-time")


def utc_text_as_written(value: str) -> str | None:
    """Insider's text for UTC date-time text as taps write it, or None for any other text.

    ``2024-12-21T04:41:55+00:00`` is already UTC to the second: once the same parser
    accepts it, the text is the answer. Any other text takes the general path, which says
    why it is not a date.

    Args:
        value: Source text.

    Returns:
        ``2024-12-21T04:41:55Z``, or None.
    """
    if not (
        len(value) == UTC_TEXT_LENGTH
        and value.isascii()  # the parser refuses other digits anyway: a cheap first test
        and value.endswith("+00:00")
        and value[4] == value[7] == "-"  # extended format only (not 20241221T044155.000)
        and value[10] == "T"
        and value[13] == value[16] == ":"
        and value[0] != "0"  # a year before 1000 is written by strftime (below)
    ):
        return None
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return f"{value[:19]}Z"


def to_utc_datetime(value: object) -> str:
    """Format as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC.

    Args:
        value: ``datetime``, ``date`` or ISO 8601 string.

    Returns:
        The formatted string.
    """
    if type(value) is str:
        text = utc_text_as_written(value)
        if text is not None:
            return text
    return to_utc_datetime_reference(value)


def to_utc_datetime_reference(value: object) -> str:
    """:func:`to_utc_datetime` without its shortcut for UTC text (the reference for its test).

    Args:
        value: ``datetime``, ``date`` or ISO 8601 string.

    Returns:
        The formatted string.
    """
    parsed = _parse_temporal(value)
    if not isinstance(parsed, dt.datetime):
        return f"{parsed.isoformat()}T00:00:00Z"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_UTC)
    utc = parsed.astimezone(_UTC)
    if utc.year < _FOUR_DIGIT_YEAR:  # strftime writes year 999 as "999", isoformat as "0999"
        return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    # Same text as the strftime above, several times faster (it runs per date per record).
    return f"{utc.replace(microsecond=0, tzinfo=None).isoformat()}Z"


def to_birthday(value: object) -> str:
    """Format a birthday as midnight UTC of the calendar date given.

    Args:
        value: ``datetime``, ``date`` or ISO 8601 string.

    Returns:
        ``YYYY-MM-DDT00:00:00Z``.
    """
    parsed = _parse_temporal(value)
    day = parsed.date() if isinstance(parsed, dt.datetime) else parsed
    return f"{day.isoformat()}T00:00:00Z"


def to_string(value: object) -> str:
    """Convert a scalar to a string.

    Args:
        value: Source value.

    Returns:
        The string (numbers are formatted, booleans become ``true``/``false``).

    Raises:
        InvalidValueError: For objects and arrays.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        number = to_number(value)
        return str(number)
    if isinstance(value, dt.datetime | dt.date):
        return to_utc_datetime(value)
    raise InvalidValueError("not_a_string", f"{type(value).__name__} is not a string")


def to_scalar(value: object) -> str | int | float | bool:
    """Convert a value of unknown kind to a JSON scalar.

    Args:
        value: Source value.

    Returns:
        The scalar.

    Raises:
        InvalidValueError: For objects and other unsupported values.
    """
    if isinstance(value, bool | str | int):
        return value
    if isinstance(value, float | Decimal):
        return to_number(value)
    if isinstance(value, dt.datetime | dt.date):
        return to_utc_datetime(value)
    raise InvalidValueError("unsupported_type", f"{type(value).__name__} values are not supported")


def to_array(value: object) -> list[str | int | float | bool]:
    """Convert to an array of scalars.

    Args:
        value: A list (a scalar becomes a one-element list).

    Returns:
        The list.

    Raises:
        InvalidValueError: If an element is an object or an array.
    """
    items = value if isinstance(value, list | tuple) else [value]
    result = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, dict | list | tuple):
            raise InvalidValueError("unsupported_type", "arrays may only hold scalars")
        result.append(to_scalar(item))
    return result


def to_int_array(value: object) -> list[int]:
    """Convert to an array of integers (``static_segment_id``).

    Args:
        value: A list or a scalar.

    Returns:
        The list of integers.
    """
    items = value if isinstance(value, list | tuple) else [value]
    result = []
    for item in items:
        if item is None:
            continue
        number = to_number(item, integer=True)
        if not isinstance(number, int):
            raise InvalidValueError("not_an_integer", "list ids must be whole numbers")
        result.append(number)
    return result


def to_language(value: object) -> str:
    """Language as Insider samples it (``en_US``): dashes become underscores.

    Args:
        value: Source value.

    Returns:
        The language code.
    """
    return to_string(value).strip().replace("-", "_")


def to_country(value: object) -> str:
    """Country code: two-letter codes are upper-cased.

    Args:
        value: Source value.

    Returns:
        The country code.
    """
    text = to_string(value).strip()
    return text.upper() if len(text) == 2 else text  # noqa: PLR2004


EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def to_email(value: object, *, normalize: bool = True) -> str:
    """Validate (and by default trim and lowercase) an email address.

    Args:
        value: Source value.
        normalize: Trim and lowercase.

    Returns:
        The email address.

    Raises:
        InvalidValueError: If it is not a plausible email address.
    """
    if not isinstance(value, str):
        raise InvalidValueError("email_not_string", "email must be a string")
    text = value.strip().lower() if normalize else value
    if not EMAIL_PATTERN.fullmatch(text):
        raise InvalidValueError("email_invalid", "email address is not valid")
    return text


Converter = Callable[[object], Any]


def converter_for_kind(kind: str) -> Converter:
    """The converter for a schema kind (custom attributes).

    Args:
        kind: A kind from :func:`schema_kind`.

    Returns:
        A one-argument converter.
    """
    return {
        "boolean": to_bool,
        "integer": to_integer,
        "number": to_number,
        "date-time": to_utc_datetime,
        "date": to_utc_datetime,
        "string": to_string,
        "array": to_array,
    }.get(kind, _to_any)


def _to_any(value: object) -> Any:
    if isinstance(value, list | tuple):
        return to_array(value)
    return to_scalar(value)
