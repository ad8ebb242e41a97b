"""The fast paths (msgspec reading/encoding, inlined conversion) agree with the reference ones."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from singer_sdk.singerlib.json import deserialize_json
from target_insider_one.config_schema import EmptyStringPolicy
from target_insider_one.conversion_steps import _SHORTCUTS, compile_step, reference_step
from target_insider_one.deadletter import encode_line, fast_line, letter_digest, plain_entry
from target_insider_one.mapping import UserMapper
from target_insider_one.payload import serialize_user, serialize_user_stdlib
from target_insider_one.reader import RedactingSingerReader
from target_insider_one.settings import parse_settings
from target_insider_one.settlement import DeadLetterReason
from target_insider_one.text import check_unicode
from target_insider_one.validation import IdentifierCheck, Issue, validate_identifiers
from target_insider_one.values import (
    InvalidValueError,
    is_empty,
    to_birthday,
    to_bool,
    to_integer,
    to_number,
    to_utc_datetime,
    to_utc_datetime_reference,
)

from .conftest import CUSTOMERS_SCHEMA, DEMO_MAPPING

TEXT = st.text(st.characters(codec=None), max_size=20)
TRICKY = st.sampled_from(
    ["\ud800", "\u2028", "\u2029", "\u2020", "\x85", "\x00", "\n", " ", "", "null", "\u200b"]
)
STRINGS = st.one_of(TEXT, TRICKY, st.builds(lambda a, b: a + b, TEXT, TRICKY))
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),
    st.decimals(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(STRINGS, inner, max_size=4)
    ),
    max_leaves=12,
)


def _outcome(function, *args) -> tuple[str, Any]:
    try:
        return "ok", function(*args)
    except Exception as exc:  # noqa: BLE001 - the exception type is the outcome
        return "error", type(exc).__name__


# What the mapping puts in a user: JSON types only (Decimal and dates are converted first).
USER_SCALARS = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),
    STRINGS,
)
USER_VALUES = st.one_of(USER_SCALARS, st.lists(USER_SCALARS, max_size=3))


@settings(max_examples=200)
@given(
    st.dictionaries(
        STRINGS,
        st.one_of(USER_VALUES, st.dictionaries(STRINGS, USER_VALUES, max_size=3)),
        max_size=6,
    )
)
def test_user_encoding_is_the_reference_json_value(user):
    fast, reference = _outcome(serialize_user, user), _outcome(serialize_user_stdlib, user)
    assert fast[0] == reference[0]
    if fast[0] == "ok":
        assert json.loads(fast[1]) == json.loads(reference[1]) or repr(fast[1]) == repr(
            reference[1]
        )
        assert b"\xe2\x80\xa8" not in fast[1]
        assert b"\xc2\x85" not in fast[1]


@settings(max_examples=200)
@given(VALUES)
def test_reader_gives_the_sdk_readers_values(value):
    try:
        line = json.dumps({"type": "RECORD", "record": value}, ensure_ascii=False, default=str)
    except (ValueError, UnicodeEncodeError):
        return
    for text in (line, line.replace("NaN", "nan")):
        reference = _outcome(deserialize_json, text)
        fast = _outcome(RedactingSingerReader().deserialize_json, text)
        if reference[0] == "error":  # e.g. "nan": refused too, with the content-free error
            assert fast == ("error", "InvalidInputLine")
        else:
            assert (fast[0], repr(fast[1])) == (reference[0], repr(reference[1]))


def _reference_convert(mapper: UserMapper, record: dict[str, Any]) -> tuple[dict, dict, list]:
    """The attribute conversion as written before the inlined fast path."""
    attributes: dict[str, Any] = dict(mapper._fixed)
    custom: dict[str, Any] = dict(mapper._fixed_custom)
    issues: list[Issue] = []
    policy = mapper.settings.empty_string_policy
    for source, target, convert in mapper._attributes:
        value = record.get(source)
        if is_empty(value, policy):
            continue
        try:
            converted = convert(value)
            check_unicode(converted)
        except (InvalidValueError, ValueError, TypeError, OverflowError) as exc:
            issues.append(
                Issue(
                    target.label,
                    source,
                    getattr(exc, "reason", "invalid_value"),
                    getattr(exc, "message", "value could not be converted"),
                )
            )
            continue
        if isinstance(converted, str) and converted == "" and policy == EmptyStringPolicy.OMIT:
            continue
        (custom if target.custom else attributes)[target.name] = converted
    return attributes, custom, issues


FIELDS = list(CUSTOMERS_SCHEMA["properties"])
RECORD_VALUES = st.one_of(
    VALUES,
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(["0999-01-01T00:00:00Z", "9999-12-31T23:59:59-06:00", "  ", "yes"]),
)


@settings(max_examples=200)
@given(
    st.dictionaries(st.sampled_from(FIELDS), RECORD_VALUES, max_size=len(FIELDS)),
    st.sampled_from(list(EmptyStringPolicy)),
)
def test_attribute_conversion_matches_the_reference(record, policy):
    config = {
        "partner_name": "p",
        "api_key": "k",
        **DEMO_MAPPING,
        "attribute_mappings": {**DEMO_MAPPING["attribute_mappings"], "ModifiedDate": "modified"},
        "empty_string_policy": policy.value,
    }
    mapper = UserMapper(parse_settings(config), CUSTOMERS_SCHEMA)
    issues: list[Issue] = []
    fast = mapper._convert_attributes(record, issues)
    assert (*fast, issues) == _reference_convert(mapper, record)


@settings(max_examples=200)
@given(st.datetimes(timezones=st.none() | st.timezones()))
def test_datetime_text_is_the_strftime_one(value):
    utc = value.replace(tzinfo=value.tzinfo or dt.UTC)
    try:
        expected = utc.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OverflowError:
        return
    assert to_utc_datetime(value) == expected


def test_decimal_values_decode_as_decimal():
    assert RedactingSingerReader().deserialize_json('{"a":1.50}') == {"a": Decimal("1.50")}


DEAD_LETTER_VALUES = st.one_of(
    VALUES,
    st.sampled_from(DeadLetterReason),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.tuples(SCALARS),
    st.dictionaries(st.integers(), SCALARS, max_size=2),
)


@settings(max_examples=200)
@given(
    record=st.dictionaries(STRINGS, DEAD_LETTER_VALUES, max_size=6),
    details=st.dictionaries(STRINGS, DEAD_LETTER_VALUES, max_size=3),
    message=STRINGS,
    batch_id=st.one_of(st.none(), TEXT),
)
def test_dead_letter_fast_line_is_the_reference_line(record, details, message, batch_id):
    entry = {
        "reason": DeadLetterReason.REJECTED_BY_INSIDER,
        "message": message,
        "stream": "Customers",
        "record": record,
        "details": details,
        "batch_id": batch_id,
        "run_id": "abc",
        "at": "2026-12-01T00:00:00Z",
    }
    reference = encode_line(entry)
    line = fast_line(entry)
    if line is not None:
        assert line == reference
        # The digest of the entry in memory is that of the line read back (a rerun's).
        assert letter_digest(plain_entry(entry)) == letter_digest(json.loads(reference))


def test_dead_letter_fast_line_takes_typical_records_and_leaves_what_differs():
    entry = {
        "reason": "no_valid_identifier",
        "message": "m",
        "stream": "s",
        "record": {"Key": "K1", "Points": 3, "Value": 44803.08, "Opt": True, "Email": None},
        "details": {"issues": [{"target": "email", "reason": DeadLetterReason.BAD_REQUEST}]},
        "batch_id": None,
        "run_id": "r",
        "at": "2026-12-01T00:00:00Z",
    }
    assert fast_line(entry) == encode_line(entry)
    # Decimals (the reader's numbers with a fraction) are written as json_default writes them.
    for value in (Decimal("44803.08"), Decimal("12.00"), Decimal("NaN"), Decimal("1E+17")):
        other = {**entry, "record": {"Value": value, "Name": "x"}}
        assert fast_line(other) == encode_line(other), value
    for value in (1e16, float("nan"), 2**70, Decimal("1E+400"), Decimal("1E-20"), (1,), "\ud800"):
        other = {**entry, "record": {"Value": value}}
        assert fast_line(other) is None, value


def _date_outcome(function, value) -> tuple[str, Any]:
    try:
        return "ok", function(value)
    except InvalidValueError as exc:
        return "error", exc.reason


UTC_TEXTS = st.one_of(
    st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.replace(microsecond=0).isoformat()),
    st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.isoformat()),
)


@settings(max_examples=200)
@given(UTC_TEXTS, st.integers(0, 24), st.sampled_from("0123456789T:+-Z 9x\u0660"))
def test_utc_datetime_text_shortcut_is_the_reference(text, position, character):
    changed = text[:position] + character + text[position + 1 :]
    # Basic-format parts that fromisoformat accepts too, in the same 25 characters.
    basic_time = f"{text[:11]}{text[11:19].replace(':', '')}.0{text[19:]}"
    basic_date = f"{text[:10].replace('-', '')}{text[10:19]}.0{text[19:]}"
    for value in (text, changed, f" {text[1:]}", basic_time, basic_date):
        assert _date_outcome(to_utc_datetime, value) == _date_outcome(
            to_utc_datetime_reference, value
        )


def _step_outcome(step, value) -> tuple[str, Any]:
    try:
        result = step(value)
    except (InvalidValueError, ValueError, TypeError, OverflowError) as exc:
        return "error", (type(exc).__name__, getattr(exc, "reason", None))
    return "ok", (type(result).__name__, repr(result))


HOSTILE_TEXT = st.sampled_from(
    [
        "\ud800",
        "\udfff",
        "\x00",
        "\t",
        "\u3000",
        "\xa0",
        " JP",
        "jp",
        "J\u0130",
        "\u0661\u0662\u0663",
        "\u0661\u0662",
        "9999-12-31T23:59:59+00:00",
        "0001-01-01T00:00:00+00:00",
        "0999-01-01T00:00:00+00:00",
        "9999-12-31",
        "0001-01-01",
        "2024-02-30",
        "2024-12-21T04:41:55+0000",
        "2024-12-21 04:41:55+00:00",
        "20241221T044155.0+00:00",
        "2024-12-21T044155.0+00:00",
        "2024-12-21T04:41:55-06:00",
        "2024-12-21T04:41:55+00:00 ",
        "\u0661\u0669\u0666\u0666-05-14T06:00:00+00:00",
        "1e400",
        "NaN",
        "-0",
        "yes",
    ]
)
STEP_VALUES = st.one_of(
    RECORD_VALUES,
    HOSTILE_TEXT,
    st.builds(lambda a, b: a + b, HOSTILE_TEXT, TRICKY),
    st.dates().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.replace(microsecond=0).isoformat()),
    st.decimals(allow_nan=True, allow_infinity=True, places=2),
    st.sampled_from(
        [Decimal("sNaN"), Decimal("1E+400"), Decimal("1.5E+308"), Decimal("-0.00"), 10**400]
    ),
    st.sampled_from([Decimal("0.99999999999999999999"), Decimal("1E-400"), Decimal("2.50")]),
    st.text(st.characters(codec="ascii"), min_size=2, max_size=2),
)


@pytest.mark.parametrize("convert", sorted(_SHORTCUTS, key=lambda f: f.__name__))
@pytest.mark.parametrize("omit", [True, False])
@settings(max_examples=100)
@given(value=STEP_VALUES)
def test_each_attribute_shortcut_is_the_reference_step(convert, omit, value):
    expected = _step_outcome(reference_step(convert, omit=omit), value)
    assert _step_outcome(compile_step(convert, omit=omit), value) == expected


@settings(max_examples=200)
@given(STEP_VALUES)
def test_typed_converters_give_ascii_text_or_no_text(value):
    # Why the typed shortcuts skip check_unicode: these outputs can never hold a surrogate.
    for convert in (to_bool, to_number, to_integer, to_birthday, to_utc_datetime):
        kind, result = _outcome(convert, value)
        if kind == "ok" and isinstance(result, str):
            assert result.isascii()
        if kind == "ok":
            assert not isinstance(result, list)


IDENTIFIER_VALUES = st.one_of(
    STEP_VALUES,
    st.emails(),
    st.emails().map(lambda e: f"  {e.upper()}\t"),
    st.sampled_from(
        [
            "a@b.co",
            "A@B.CO ",
            "a@b",
            "@b.co",
            "a@@b.co",
            "a b@c.de",
            "a@b.c\n",
            "a@b.\u200bco",
            "UNDEFINED",
            " n/a ",
            "anonymous@x.io",
            "SK-1",
            " SK-1\x00",
            "\u200bSK-1",
            "+44 20 7946 0000",
            "02079460000",
            True,
            12345,
            2**80,
            1.5,
            [],
            ["x"],
        ]
    ),
)
IDENTIFIER_FIELDS = ["EmailAddress", "SubscriberKey", "Phone", "LoyaltyId"]


@settings(max_examples=200)
@given(
    record=st.dictionaries(st.sampled_from(IDENTIFIER_FIELDS), IDENTIFIER_VALUES),
    policy=st.sampled_from(list(EmptyStringPolicy)),
    skip_record=st.booleans(),
    normalize=st.booleans(),
    blocked=st.sampled_from([None, ["anonymous@x.io", "sk-1"]]),
)
@example(
    record={"EmailAddress": " Anonymous@X.io", "SubscriberKey": "SK-1", "LoyaltyId": "\u200b"},
    policy=EmptyStringPolicy.OMIT,
    skip_record=False,
    normalize=True,
    blocked=["anonymous@x.io", "sk-1"],
)
def test_compiled_identifier_check_is_validate_identifiers(
    record, policy, skip_record, normalize, blocked
):
    config = {
        "partner_name": "p",
        "api_key": "k",
        **DEMO_MAPPING,
        "identifier_mappings": [
            *DEMO_MAPPING["identifier_mappings"],
            {"type": "custom", "field": "LoyaltyId", "name": "loyalty_id"},
        ],
        "empty_string_policy": policy.value,
        "invalid_identifier_policy": "skip_record" if skip_record else "skip_identifier",
        "normalize_emails": normalize,
        "phone_default_region": "GB",
    }
    if blocked is not None:
        config["blocked_identifier_values"] = blocked
    configured = parse_settings(config)
    assert IdentifierCheck(configured)(record) == validate_identifiers(record, configured)
