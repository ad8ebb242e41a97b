from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from singer_sdk.exceptions import InvalidRecord
from singer_sdk.singerlib.json import deserialize_json
from singer_sdk.sinks.core import JSONSchemaValidator
from target_insider_one.schema_validation import CompiledSchemaValidator, compile_validator

SCHEMA = {
    "type": "object",
    "properties": {
        "SubscriberKey": {"type": ["string"]},
        "LoyaltyPoints": {"type": ["integer", "null"]},
        "LifetimeValue": {"type": ["number", "null"]},
        "ModifiedDate": {"type": ["string", "null"], "format": "date-time"},
    },
    "required": ["SubscriberKey"],
}


def test_valid_record_passes_with_decimals_and_unchecked_formats() -> None:
    validator = CompiledSchemaValidator(SCHEMA)
    validator.validate(
        {
            "SubscriberKey": "SK1",
            "LoyaltyPoints": 5,
            "LifetimeValue": Decimal("12.30"),
            "ModifiedDate": "not a date: values.py reports it per attribute",
        }
    )


def test_invalid_record_names_the_rule_not_the_value() -> None:
    validator = CompiledSchemaValidator(SCHEMA)
    with pytest.raises(InvalidRecord) as caught:
        validator.validate({"SubscriberKey": "SK1", "LoyaltyPoints": "secret-ish-value"})
    assert "LoyaltyPoints" in caught.value.error_message
    assert "secret-ish-value" not in caught.value.error_message


def test_missing_required_field_is_invalid() -> None:
    with pytest.raises(InvalidRecord):
        CompiledSchemaValidator(SCHEMA).validate({"LoyaltyPoints": 1})


def test_schema_fastjsonschema_cannot_compile_falls_back() -> None:
    assert compile_validator({"type": "no-such-type"}) is None
    assert compile_validator(SCHEMA) is not None


# -- any valid keyword, any number: validated, never a crash ------------------------------

NUMBER_TEXT = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["1e400", "-1e-400", "0.01", "1E+2", "-0"]),
)
POSITIVE_TEXT = st.one_of(
    st.integers(1, 10**6).map(str),
    st.decimals(min_value=Decimal("0.0001"), max_value=10**6, places=4).map(str),
    st.sampled_from(["0.01", "0.1", "1e-3", "2.5", "1e300"]),
)
KEYWORDS = [
    '{{"type": "number", "multipleOf": {p}}}',
    '{{"type": "integer", "multipleOf": {p}}}',
    '{{"multipleOf": {p}, "minimum": {n}, "maximum": {p}}}',
    '{{"type": "number", "exclusiveMinimum": {n}}}',
    '{{"type": "number", "exclusiveMaximum": {n}}}',
    '{{"enum": [{n}, {p}, "x", null]}}',
    '{{"const": {n}}}',
    '{{"type": "array", "items": {{"multipleOf": {p}}}, "uniqueItems": true}}',
    '{{"anyOf": [{{"type": "string", "pattern": "^[a-z]+$"}}, {{"multipleOf": {p}}}]}}',
    '{{"not": {{"multipleOf": {p}}}}}',
    '{{"type": "string", "minLength": 1, "maxLength": 3, "format": "email"}}',
    '{{"type": "object", "patternProperties": {{"^[a-z]+$": {{"multipleOf": {p}}}}}}}',
]


@settings(max_examples=200)
@given(
    keyword=st.sampled_from(KEYWORDS),
    positive=POSITIVE_TEXT,
    number=NUMBER_TEXT,
    value=st.one_of(
        NUMBER_TEXT,
        st.lists(NUMBER_TEXT, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.just('"abc"'),
        st.just('{"abc": 1.5}'),
    ),
)
def test_any_keyword_validates_numbers_from_the_sdk_reader_without_crashing(
    keyword, positive, number, value
):
    prop = keyword.format(p=positive, n=number)
    schema = deserialize_json(f'{{"type": "object", "properties": {{"v": {prop}}}}}')
    record = deserialize_json(f'{{"v": {value}}}')  # numbers as the SDK's reader gives them
    validator = compile_validator(schema) or JSONSchemaValidator(schema)
    try:
        validator.validate(record)
    except InvalidRecord as exc:  # the documented rejection: dead-lettered by the sink
        message = exc.error_message
    else:
        message = "valid"
    assert message


def test_multiple_of_with_decimals_checks_exactly() -> None:
    schema = deserialize_json('{"properties": {"a": {"type": "number", "multipleOf": 0.01}}}')
    validator = compile_validator(schema)
    validator.validate(deserialize_json('{"a": 19.01}'))  # float division would say no
    with pytest.raises(InvalidRecord, match="multiple of"):
        validator.validate(deserialize_json('{"a": 19.015}'))
