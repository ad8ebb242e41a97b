"""The quick check accepts only what the full validator accepts, and the common records."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import fastjsonschema
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from target_insider_one.flat_schema_check import quick_check

TYPE_NAMES = ["string", "null", "boolean", "integer", "number"]


class Text(str):
    """A str subclass: fastjsonschema takes it as a string, the quick check defers."""

    __slots__ = ()


TYPE = st.one_of(
    st.sampled_from(TYPE_NAMES), st.lists(st.sampled_from(TYPE_NAMES), min_size=1, max_size=3)
)
COLUMN = st.fixed_dictionaries(
    {"type": TYPE},
    optional={
        "maxLength": st.integers(0, 6),
        "format": st.sampled_from(["date-time", "date", "email"]),
        "description": st.text(max_size=5),
    },
)
NAMES = st.sampled_from(["a", "b", "c", "d"])
FLAT_SCHEMA = st.builds(
    lambda props, required: {"type": "object", "properties": props, "required": required},
    st.dictionaries(NAMES, COLUMN, max_size=4),
    st.lists(NAMES, max_size=2, unique=True),
)
VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, places=3),
    st.text(max_size=8),
    st.text(max_size=8).map(Text),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
RECORD = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]), VALUE, max_size=5)


def one_column(column: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"a": column}, "required": []}


def full_accepts(schema: dict[str, Any], record: dict[str, Any]) -> bool:
    try:
        fastjsonschema.compile(schema, use_formats=False)(record)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(FLAT_SCHEMA, RECORD)
@example(one_column({"type": "integer"}), {"a": True})
@example(one_column({"type": "integer"}), {"a": 2.0})
@example(one_column({"type": "string", "maxLength": 2}), {"a": "abc"})
@example({"type": "object", "properties": {}, "required": ["a"]}, {})
def test_every_record_it_accepts_the_full_validator_accepts(
    schema: dict[str, Any], record: dict[str, Any]
) -> None:
    check = quick_check(schema)
    assert check is not None
    if check(record):
        assert full_accepts(schema, record)


TAP_SCHEMA = {
    "type": "object",
    "properties": {
        "SubscriberKey": {"maxLength": 100, "type": ["string"]},
        "EmailAddress": {"maxLength": 254, "type": ["string", "null"]},
        "BirthDate": {"format": "date-time", "type": ["string", "null"]},
        "LoyaltyPoints": {"type": ["integer", "null"]},
        "LifetimeValue": {"type": ["number", "null"]},
        "EmailOptIn": {"type": ["boolean", "null"]},
    },
    "required": ["SubscriberKey"],
}


def test_accepts_the_records_taps_write() -> None:
    check = quick_check(TAP_SCHEMA)
    assert check is not None
    assert check(
        {
            "SubscriberKey": "SK1",
            "EmailAddress": None,
            "BirthDate": "1990-12-10T00:00:00+00:00",
            "LoyaltyPoints": 5,
            "LifetimeValue": Decimal("12.30"),
            "EmailOptIn": False,
            "NotInSchema": [1],
        }
    )


@pytest.mark.parametrize(
    "record",
    [
        {"EmailAddress": "a@b.c"},  # the required key is missing
        {"SubscriberKey": "x" * 101},  # longer than maxLength
        {"SubscriberKey": "SK1", "LoyaltyPoints": 5.0},  # fastjsonschema decides
        {"SubscriberKey": "SK1", "EmailOptIn": 1},
    ],
)
def test_defers_records_it_is_unsure_of(record: dict[str, Any]) -> None:
    check = quick_check(TAP_SCHEMA)
    assert check is not None
    assert not check(record)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string", "enum": ["x"]}}},
        {"type": "object", "properties": {"a": {"type": "object", "properties": {}}}},
        {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}]}}},
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
        {"type": "object", "properties": {"a": {"type": "string", "maxLength": 1.5}}},
        {"type": "object", "properties": {"a": {"type": []}}},
        {"type": "array"},
        {"type": "object"},
        {"type": "object", "properties": {}, "patternProperties": {"^x": {"type": "string"}}},
    ],
)
def test_no_quick_check_beyond_flat_scalar_columns(schema: dict[str, Any]) -> None:
    assert quick_check(schema) is None
