import datetime as dt
from decimal import Decimal

import pytest
from target_insider_one.values import (
    InvalidValueError,
    converter_for_kind,
    is_empty,
    schema_kind,
    to_birthday,
    to_bool,
    to_country,
    to_email,
    to_int_array,
    to_language,
    to_number,
    to_string,
    to_utc_datetime,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("True", True),
        ("true", True),
        (" YES ", True),
        ("y", True),
        ("1", True),
        ("on", True),
        (1, True),
        ("False", False),
        ("no", False),
        ("0", False),
        ("off", False),
        (0, False),
        (Decimal(1), True),
    ],
)
def test_to_bool(value, expected):
    assert to_bool(value) is expected


@pytest.mark.parametrize("value", ["maybe", 2, "", 1.5, None, []])
def test_to_bool_rejects(value):
    with pytest.raises(InvalidValueError):
        to_bool(value)


def test_to_number():
    assert to_number(5) == 5
    assert to_number(Decimal("1520.75")) == 1520.75
    assert isinstance(to_number(Decimal("1520.75")), float)
    assert to_number(Decimal("1520.00"), integer=True) == 1520
    assert isinstance(to_number(Decimal("1520.00"), integer=True), int)
    assert isinstance(to_number(Decimal("1E+2")), int)
    assert to_number("12.5") == 12.5
    assert to_number(" 7 ", integer=True) == 7
    assert to_number(3.0, integer=True) == 3
    assert isinstance(to_number(3.0, integer=True), int)
    for bad in (True, "abc", Decimal("NaN"), float("inf"), [1]):
        with pytest.raises(InvalidValueError):
            to_number(bad)


def test_datetimes_are_utc_z():
    assert to_utc_datetime("2026-07-01T09:30:00.123456+02:00") == "2026-07-01T07:30:00Z"
    assert to_utc_datetime("2026-07-01T09:30:00Z") == "2026-07-01T09:30:00Z"
    assert to_utc_datetime("2026-07-01T09:30:00") == "2026-07-01T09:30:00Z"  # naive = UTC
    assert to_utc_datetime("2026-07-01") == "2026-07-01T00:00:00Z"
    assert to_utc_datetime(dt.date(2026, 7, 1)) == "2026-07-01T00:00:00Z"
    aware = dt.datetime(2026, 7, 1, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=-6)))
    assert to_utc_datetime(aware) == "2026-07-02T05:00:00Z"
    with pytest.raises(InvalidValueError):
        to_utc_datetime("yesterday")
    with pytest.raises(InvalidValueError):
        to_utc_datetime(12345)


def test_birthday_keeps_calendar_date_and_ends_in_z():
    # An SFMC-style offset must not move the birthday to the previous day.
    assert to_birthday("1990-12-10T00:00:00-06:00") == "1990-12-10T00:00:00Z"
    assert to_birthday("1990-12-10T23:30:00+05:00") == "1990-12-10T00:00:00Z"
    assert to_birthday("1990-12-10") == "1990-12-10T00:00:00Z"
    assert to_birthday(dt.datetime(1990, 12, 10, 15, 0, tzinfo=dt.UTC)).endswith("Z")


def test_empty_rule():
    assert is_empty(None)
    assert is_empty("")
    assert is_empty("   ")
    assert is_empty([])
    assert not is_empty("x")
    assert not is_empty(0)
    assert not is_empty(False)
    assert not is_empty("", "send")
    assert is_empty(None, "send")


def test_strings_and_specials():
    assert to_string(5) == "5"
    assert to_string(Decimal("2.50")) == "2.5"
    assert to_string(True) == "true"
    assert to_language("en-US") == "en_US"
    assert to_country(" gb ") == "GB"
    assert to_country("Germany") == "Germany"
    assert to_int_array([1, "2", Decimal(3)]) == [1, 2, 3]
    assert to_int_array(7) == [7]
    assert to_email(" Ada@Example.COM ") == "ada@example.com"
    assert to_email("Ada@Example.COM", normalize=False) == "Ada@Example.COM"
    for bad in ("ada", "ada@example", "a b@example.com", "a@@example.com", 5):
        with pytest.raises(InvalidValueError):
            to_email(bad)
    with pytest.raises(InvalidValueError):
        to_string({"a": 1})


def test_schema_kind():
    assert schema_kind({"type": ["boolean", "null"]}) == "boolean"
    assert schema_kind({"type": "integer"}) == "integer"
    assert schema_kind({"type": ["string", "null"], "format": "date-time"}) == "date-time"
    assert schema_kind({"type": "string", "format": "date"}) == "date"
    assert schema_kind({"anyOf": [{"type": "null"}, {"type": "number"}]}) == "number"
    assert schema_kind({"type": ["null"]}) == "any"
    assert schema_kind(None) == "any"
    assert schema_kind({"type": "array", "items": {"type": "string"}}) == "array"


def test_converter_for_kind():
    assert converter_for_kind("boolean")("yes") is True
    assert converter_for_kind("integer")(Decimal("3.0")) == 3
    assert converter_for_kind("date-time")("2026-01-01T01:00:00+01:00") == "2026-01-01T00:00:00Z"
    assert converter_for_kind("array")(["a", Decimal("1.5")]) == ["a", 1.5]
    assert converter_for_kind("string")("yes") == "yes"  # strings stay strings
    assert converter_for_kind("any")(Decimal("2.5")) == 2.5
    with pytest.raises(InvalidValueError):
        converter_for_kind("object")({"nested": 1})
    with pytest.raises(InvalidValueError):
        converter_for_kind("array")([{"nested": 1}])


def test_int_array_rejects_fractions():
    with pytest.raises(InvalidValueError):
        to_int_array([Decimal("1.5")])
