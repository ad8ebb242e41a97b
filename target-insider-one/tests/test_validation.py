from target_insider_one.settings import parse_settings
from target_insider_one.validation import validate_identifiers

from .conftest import DEMO_MAPPING


def settings(**overrides):
    config = {"partner_name": "acme", "api_key": "k", **DEMO_MAPPING, "phone_default_region": "GB"}
    config.update(overrides)
    return parse_settings(config)


def test_all_valid_are_normalised():
    outcome = validate_identifiers(
        {"SubscriberKey": " C1 ", "EmailAddress": "A@B.CO", "Phone": "020 7946 0958"}, settings()
    )
    assert outcome.identifiers == {
        "uuid": "C1",
        "email": "a@b.co",
        "phone_number": "+442079460958",
    }
    assert outcome.skip_reason is None


def test_skip_identifier_keeps_record_with_a_valid_one():
    outcome = validate_identifiers(
        {"SubscriberKey": "C1", "EmailAddress": "bad", "Phone": "abc"}, settings()
    )
    assert outcome.identifiers == {"uuid": "C1"}
    assert {i.reason for i in outcome.issues} == {"email_invalid", "phone_not_a_number"}
    assert outcome.skip_reason is None


def test_skip_identifier_skips_when_none_left():
    outcome = validate_identifiers({"EmailAddress": "bad", "Phone": "12"}, settings())
    assert outcome.skip_reason == "no_valid_identifier"
    # Every invalid identifier says why, field by field (never the value itself).
    assert outcome.skip_message == (
        "no valid identifier: email (EmailAddress): email address is not valid; "
        "phone_number (Phone): phone number is too short for its region"
    )


def test_skip_record_policy():
    outcome = validate_identifiers(
        {"SubscriberKey": "C1", "EmailAddress": "bad"},
        settings(invalid_identifier_policy="skip_record"),
    )
    assert outcome.skip_reason == "invalid_identifier"
    assert outcome.identifiers == {}
    both = validate_identifiers(
        {"SubscriberKey": "C1", "EmailAddress": "bad", "Phone": "abc"},
        settings(invalid_identifier_policy="skip_record"),
    )
    assert both.skip_message.count(";") == 1
    assert "email (EmailAddress)" in both.skip_message
    assert "phone_number (Phone)" in both.skip_message


def test_absent_identifiers_are_not_invalid():
    outcome = validate_identifiers(
        {"SubscriberKey": "C1", "EmailAddress": None, "Phone": "  "},
        settings(invalid_identifier_policy="skip_record"),
    )
    assert outcome.identifiers == {"uuid": "C1"}
    assert outcome.issues == []
    nothing = validate_identifiers({"FirstName": "x"}, settings())
    assert nothing.skip_reason == "no_identifier"


def test_uuid_types_and_blocked_values():
    assert validate_identifiers({"SubscriberKey": 12345}, settings()).identifiers == {
        "uuid": "12345"
    }
    for bad in (12.5, True, {"a": 1}, ["x"]):
        outcome = validate_identifiers({"SubscriberKey": bad}, settings())
        assert outcome.skip_reason == "no_valid_identifier", bad
        assert outcome.issues[0].reason == "uuid_not_string"
    blocked = validate_identifiers({"SubscriberKey": "Undefined"}, settings())
    assert blocked.issues[0].reason == "blocked_value"


def test_custom_identifiers_nest_under_custom():
    s = settings(
        identifier_mappings=[
            {"type": "custom", "field": "Loyalty", "name": "loyalty_id"},
            {"type": "uuid", "field": "SubscriberKey"},
        ]
    )
    outcome = validate_identifiers({"Loyalty": "LY-1", "SubscriberKey": "C1"}, s)
    assert outcome.identifiers == {"custom": {"loyalty_id": "LY-1"}, "uuid": "C1"}
