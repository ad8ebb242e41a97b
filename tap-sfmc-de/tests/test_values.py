import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from singer_sdk.singerlib.json import serialize_json
from tap_sfmc_de.schema import DEField
from tap_sfmc_de.values import (
    ConversionProblemError,
    FieldConverter,
    _parse_lenient,  # the original parser, kept as the slow path
    format_sfmc_datetime,
    from_bookmark,
    is_beyond_utc,
    parse_offset,
    parse_sfmc_datetime,
    to_bookmark,
    to_boolean,
    to_decimal,
    to_integer,
    to_utc_text,
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


# --- every converter: a typed value or ConversionProblemError, and JSON-serialisable ----
SFMC_TYPES = ("Text", "EmailAddress", "Phone", "Locale", "Number", "Decimal", "Boolean", "Date")
PYTHON_TYPES = {"string": str, "integer": int, "number": Decimal, "boolean": bool}
# Any code point, with surrogates and control characters drawn often (they are rare).
ANY_CHAR = (
    st.characters(codec=None, exclude_categories=())
    | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())
    | st.characters(max_codepoint=0x1F, exclude_categories=())
)
# st.text() would merge the alternatives into one uniform range; a list keeps the weights.
ANY_TEXT = st.lists(ANY_CHAR).map("".join)
DATE_PART = (
    st.sampled_from([0, 1, 11, 12, 13, 31, 59, 60, 9999, 10000, "inf", "nan", "1e400", "-0"])
    | st.integers(-10, 10**6)
    | st.lists(ANY_CHAR, max_size=3).map("".join)
)
DATE_LIKE = st.builds(
    "{}/{}/{} {}:{}:{} {}".format,
    *[DATE_PART for _ in range(6)],
    st.sampled_from(["AM", "PM", "XM", "", "am"]),
)
RAW = ANY_TEXT | DATE_LIKE | st.from_regex(r"-?\d{1,30}(\.\d{0,30})?(e-?\d{1,9})?")
EDGE_VALUES = [
    "12/31/9999 11:59:59 PM",
    "1/1/0001 12:00:00 AM",
    "9999-12-31T23:59:59-06:00",
    "0001-01-01T00:00:00+14:00",
    "5/8/2024 1:02:inf PM",
    "5/8/2024 1:02:nan PM",
    "9" * 5000,
    "1e999999999",
    "-1e-999999999",
    "sNaN",
    "\ud800",
    "a\udfffb",
    "\x00\x1f\x7f",
    "x" * 1_000_000,
]


def assert_typed_or_problem(sfmc_type, raw):
    converter = FieldConverter("x", DEField("x", sfmc_type).kind, CST)
    try:
        value = converter.convert(raw)
    except ConversionProblemError:
        return
    if value is not None:
        if converter.kind == "date-time":
            assert from_bookmark(value).tzinfo is not None
        else:
            assert isinstance(value, PYTHON_TYPES[converter.kind])
    line = serialize_json({"type": "RECORD", "record": {"x": value}})
    line.encode("utf-8")  # what the SDK writes to stdout
    received = json.loads(line)["record"]["x"]
    assert (received is None) == (value is None)
    # and what a target reads back is valid Unicode it can pass on as UTF-8
    json.dumps(received, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("sfmc_type", SFMC_TYPES)
@given(raw=RAW)
@settings(max_examples=150)
def test_every_converter_returns_a_typed_value_or_the_conversion_error(sfmc_type, raw):
    assert_typed_or_problem(sfmc_type, raw)


@pytest.mark.parametrize("sfmc_type", SFMC_TYPES)
@pytest.mark.parametrize("raw", EDGE_VALUES, ids=lambda r: repr(r[:20]))
def test_edge_values_are_typed_or_the_conversion_error(sfmc_type, raw):
    assert_typed_or_problem(sfmc_type, raw)


def test_end_of_time_sentinel_is_a_conversion_problem_not_an_overflow():
    # 11:59:59 PM in UTC-6 is 05:59:59 on 1/1/10000 in UTC: not representable.
    with pytest.raises(ConversionProblemError, match="years 1-9999 in UTC"):
        FieldConverter("ValidUntil", "date-time", CST).convert("12/31/9999 11:59:59 PM")
    assert is_beyond_utc(parse_sfmc_datetime("12/31/9999 11:59:59 PM", CST))
    noon = FieldConverter("ValidUntil", "date-time", CST).convert("12/31/9999 12:00:00 PM")
    assert noon == "9999-12-31T18:00:00+00:00"


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("integer", "9" * 5000),  # json cannot render an int this long
        ("integer", "1e999999999"),  # int() of it would not finish
        ("integer", str(2**63)),
        ("number", "1e999999999"),
        ("string", "\ud800"),  # no UTF-8 reader accepts a lone surrogate
        ("date-time", "5/8/2024 1:02:inf PM"),
    ],
)
def test_values_that_do_not_fit_their_type_are_conversion_problems(kind, raw):
    with pytest.raises(ConversionProblemError):
        FieldConverter("x", kind, CST).convert(raw)


def test_values_at_the_limits_still_convert():
    assert to_integer(str(2**63 - 1)) == 2**63 - 1
    assert to_integer(str(-(2**63))) == -(2**63)
    assert to_decimal("1" * 38) == Decimal("1" * 38)
    assert FieldConverter("x", "string", CST).convert("emoji \U0001f600 \x00") == (
        "emoji \U0001f600 \x00"
    )


# --- the fast paths give exactly what the lenient parser (the original one) gives ---------
CANONICAL_LIKE = st.builds(
    "{}/{}/{} {}:{:02d}:{:02d} {}M".format,
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 10000),
    st.integers(0, 13),
    st.integers(0, 60),
    st.integers(0, 60),
    st.sampled_from("APX"),
)
OFFSETS = st.sampled_from(["-06:00", "+00:00", "+05:30", "-12:00", "+14:00"]).map(parse_offset)


def lenient_outcome(parse, *args):
    try:
        return "ok", parse(*args)
    except ConversionProblemError as exc:
        return "problem", str(exc)


@given(raw=CANONICAL_LIKE | DATE_LIKE | RAW, tz=OFFSETS)
@settings(max_examples=200)
def test_fast_date_paths_agree_with_the_lenient_parser(raw, tz):
    expected = lenient_outcome(_parse_lenient, raw, tz)
    parsed = lenient_outcome(parse_sfmc_datetime, raw, tz)
    assert parsed == expected
    if parsed[0] == "ok":
        assert parsed[1].utcoffset() == expected[1].utcoffset()
        assert is_beyond_utc(parsed[1]) == (parsed[1] > dt.datetime.max.replace(tzinfo=dt.UTC))
    text = lenient_outcome(FieldConverter("d", "date-time", tz).convert, raw)
    if raw == "":  # NULL for every kind
        original = ("ok", None)
    elif expected[0] == "ok":
        original = lenient_outcome(to_utc_text, expected[1])
    else:
        original = expected
    assert text == original
