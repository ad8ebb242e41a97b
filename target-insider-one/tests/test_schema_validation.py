from decimal import Decimal

import pytest
from singer_sdk.exceptions import InvalidRecord
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
