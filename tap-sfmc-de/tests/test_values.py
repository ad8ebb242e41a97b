import datetime as dt
from decimal import Decimal

import pytest
from tap_sfmc_de.values import (
    ConversionProblemError,
    FieldConverter,
    format_sfmc_datetime,
    from_bookmark,
    parse_offset,
    parse_sfmc_datetime,
    to_bookmark,
    to_boolean,
    to_decimal,
    to_integer,
)

CST = dt.timezone(dt.timedelta(hours=-6))


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("5/8/2024 3:04:05 PM", "2024-05-08T21:04:05+00:00"),
        ("5/8/2024 12:00:00 AM", "2024-05-08T06:00:00+00:00"),
        ("5/8/2024 12:30:00 PM", "2024-05-08T18:30:00+00:00"),
        ("12/31/2024 11:59:59 PM", "2025-01-01T05:59:59+00:00"),
        (" 1/2/2024 1:02:03 am ", "2024-01-02T07:02:03+00:00"),
        ("6/23/2024", "2024-06-23T06:00:00+00:00"),
        ("2024-06-23T10:00:00", "2024-06-23T16:00:00+00:00"),
        ("2024-06-23T10:00:00+00:00", "2024-06-23T10:00:00+00:00"),
    ],
)
def test_parse_dates_in_fixed_offset(raw, iso):
    assert to_bookmark(parse_sfmc_datetime(raw, CST)) == iso


@pytest.mark.parametrize(
    "raw", ["13/1/2024 1:00:00 PM", "5/8/2024 13:00:00 PM", "yesterday", "5/8/2024 1:00:00 XM"]
)
def test_bad_dates_raise_a_problem(raw):
    with pytest.raises(ConversionProblemError, match="expected a date"):
        parse_sfmc_datetime(raw, CST)


def test_format_round_trips_the_sfmc_literal():
    value = dt.datetime(2024, 5, 8, 21, 4, 5, tzinfo=dt.UTC)
    assert format_sfmc_datetime(value, CST) == "5/8/2024 3:04:05 PM"
    assert (
        format_sfmc_datetime(dt.datetime(2024, 5, 8, 6, 0, tzinfo=dt.UTC), CST)
        == "5/8/2024 12:00:00 AM"
    )
    assert parse_sfmc_datetime(format_sfmc_datetime(value, CST), CST) == value


def test_bookmark_format_is_one_iso_utc_shape():
    assert (
        to_bookmark(dt.datetime(2024, 1, 1, 1, 2, 3, 999, tzinfo=CST))
        == "2024-01-01T07:02:03+00:00"
    )
    assert from_bookmark("2024-01-01T07:02:03Z") == dt.datetime(2024, 1, 1, 7, 2, 3, tzinfo=dt.UTC)
    assert from_bookmark("2024-01-01") == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def test_numbers_and_booleans():
    assert to_integer("42") == 42
    assert to_integer(" -7 ") == -7
    assert to_integer("4.0") == 4
    for bad in ("4.5", "abc", "NaN", "Infinity"):
        with pytest.raises(ConversionProblemError):
            to_integer(bad)
    assert to_decimal("12.50") == Decimal("12.50")
    assert str(to_decimal("0.1")) == "0.1"
    for bad in ("NaN", "inf", "1,5"):
        with pytest.raises(ConversionProblemError):
            to_decimal(bad)
    assert to_boolean(" True") is True
    assert to_boolean("false") is False
    assert to_boolean("1") is True
    assert to_boolean("No") is False
    with pytest.raises(ConversionProblemError, match="True or False"):
        to_boolean("maybe")


def test_empty_string_is_null_for_every_kind():
    for kind in ("string", "integer", "number", "boolean", "date-time"):
        assert FieldConverter("x", kind, CST).convert("") is None
    assert FieldConverter("x", "string", CST).convert(" keep spaces ") == " keep spaces "


@pytest.mark.parametrize("text", ["-06:00", "+05:30", "+00:00"])
def test_offsets(text):
    assert parse_offset(text).utcoffset(None) is not None


@pytest.mark.parametrize("text", ["America/Chicago", "-6", "CST", "-16:00", "+01:75", ""])
def test_bad_offsets(text):
    with pytest.raises(ValueError, match="sfmc_timezone_offset"):
        parse_offset(text)
