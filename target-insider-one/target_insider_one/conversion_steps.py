"""One specialised conversion step per mapped attribute, built once per stream.

The mapping converts every mapped attribute of every record, so its generic loop (type
tests, blank test, converter call, Unicode check, empty-result test per value) was a fifth
of the target's CPU time. A step already knows its attribute's converter and the
``empty_string_policy``; it handles the values taps actually write (UTF-8 text, integers,
``Decimal``, booleans, ``YYYY-MM-DDTHH:MM:SS+00:00`` text) in a few operations, and hands
everything else to :func:`reference_step`, the general rule. Each shortcut returns only
values that cannot hold a lone surrogate (ASCII text, numbers, booleans), so it needs no
``check_unicode``. ``test_fast_paths`` checks every step against :func:`reference_step`.

A step returns the value to send, or :data:`OMIT` when the attribute is absent; it raises
the conversion errors the reference raises (the mapping reports them per attribute).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from target_insider_one.text import check_unicode, has_surrogates
from target_insider_one.values import (
    UTC_TEXT_LENGTH,
    to_birthday,
    to_bool,
    to_country,
    to_integer,
    to_number,
    to_string,
    to_utc_datetime,
    utc_text_as_written,
)

OMIT = object()
"""Returned by a step for an absent value (``None``-like under the policy)."""

Step = Callable[[object], Any]
_DATE_LENGTH = len("2024-12-21")
_COUNTRY_LENGTH = 2
_from_iso_datetime = dt.datetime.fromisoformat
_from_iso_date = dt.date.fromisoformat


def reference_step(convert: Callable[[object], Any], *, omit: bool) -> Step:
    """The general rule for one attribute: blank test, conversion, Unicode check.

    Args:
        convert: The attribute's converter (:mod:`target_insider_one.values`).
        omit: Whether ``empty_string_policy`` is ``omit``.

    Returns:
        The step.
    """

    def step(value: object) -> Any:
        if (
            omit
            and isinstance(value, str | list)
            and not (value.strip() if isinstance(value, str) else value)
        ):
            return OMIT
        converted = convert(value)
        check_unicode(converted)
        if omit and isinstance(converted, str) and converted == "":
            return OMIT
        return converted

    return step


def compile_step(convert: Callable[[object], Any], *, omit: bool) -> Step:
    """The step for an attribute: a shortcut for its common values, else the reference.

    Args:
        convert: The attribute's converter.
        omit: Whether ``empty_string_policy`` is ``omit``.

    Returns:
        The step (:func:`reference_step` itself for converters without a shortcut).
    """
    reference = reference_step(convert, omit=omit)
    builder = _SHORTCUTS.get(convert)
    return builder(reference, omit) if builder is not None else reference


def _string_step(reference: Step, omit: bool) -> Step:
    def step(value: object) -> Any:
        if type(value) is str:
            if not value or value.isspace():  # what strip() removes
                return OMIT if omit else reference(value)
            if value.isascii() or not has_surrogates(value):
                return value
        return reference(value)

    return step


def _country_step(reference: Step, _omit: bool) -> Step:
    def step(value: object) -> Any:
        if (
            type(value) is str
            and len(value) == _COUNTRY_LENGTH
            and value.isascii()
            and value.isalpha()
        ):
            return value.upper()
        return reference(value)

    return step


def _birthday_step(reference: Step, _omit: bool) -> Step:
    def step(value: object) -> Any:
        if type(value) is str and value.isascii():
            try:
                if len(value) == UTC_TEXT_LENGTH and value[10] == "T":
                    _from_iso_datetime(value)  # validates the whole text; keeps its date
                    if value[4] == value[7] == "-":
                        return f"{value[:10]}T00:00:00Z"
                elif len(value) == _DATE_LENGTH and value[4] == value[7] == "-":
                    _from_iso_date(value)
                    return f"{value}T00:00:00Z"
            except ValueError:
                pass  # the reference says why
        return reference(value)

    return step


def _utc_datetime_step(reference: Step, _omit: bool) -> Step:
    def step(value: object) -> Any:
        # to_utc_datetime's own shortcut, without the reference step around it.
        text = utc_text_as_written(value) if type(value) is str else None
        return reference(value) if text is None else text

    return step


def _bool_step(reference: Step, _omit: bool) -> Step:
    def step(value: object) -> Any:
        return value if type(value) is bool else reference(value)

    return step


def _number_step(reference: Step, _omit: bool) -> Step:
    def step(value: object) -> Any:
        kind = type(value)
        if kind is int:
            return value
        if kind is Decimal:
            # A non-integral finite float comes only from a non-integral Decimal within a
            # double's range: the reference's float(value). Anything else goes there.
            try:
                number = float(value)  # type: ignore[arg-type]
            except ValueError:  # sNaN
                return reference(value)
            if math.isfinite(number) and not number.is_integer():
                return number
        return reference(value)

    return step


_SHORTCUTS: dict[Callable[[object], Any], Callable[[Step, bool], Step]] = {
    to_string: _string_step,
    to_country: _country_step,
    to_birthday: _birthday_step,
    to_utc_datetime: _utc_datetime_step,
    to_bool: _bool_step,
    to_number: _number_step,
    to_integer: _number_step,
}
