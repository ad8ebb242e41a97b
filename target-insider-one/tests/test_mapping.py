from decimal import Decimal

from target_insider_one.mapping import UserMapper
from target_insider_one.settings import parse_settings

from .conftest import CUSTOMERS_SCHEMA, DEMO_MAPPING, customer


def mapper(schema=None, **overrides):
    config = {"partner_name": "acme", "api_key": "k", **DEMO_MAPPING}
    config.update(overrides)
    return UserMapper(parse_settings(config), schema or CUSTOMERS_SCHEMA)


def test_demo_mapping_places_default_and_custom_attributes():
    record = customer(
        1,
        BirthDate="1990-12-10T00:00:00-06:00",
        LifetimeValue=Decimal("1520.75"),
        Country="gb",
        EmailAddress="Ada@Example.com",
    )
    result = mapper().map_record(record)
    assert result.skip_reason is None
    assert result.user["identifiers"] == {
        "uuid": "CUST-000001",
        "email": "ada@example.com",
        "phone_number": "+447911100001",
    }
    assert result.user["not_append"] is True
    attributes = result.user["attributes"]
    assert attributes["name"] == "First1"
    assert attributes["surname"] == "Last"
    assert attributes["city"] == "London"
    assert attributes["country"] == "GB"
    assert attributes["birthday"] == "1990-12-10T00:00:00Z"
    assert attributes["email_optin"] is True
    assert attributes["custom"] == {
        "data_source": "sfmc",
        "loyalty_points": 1,
        "lifetime_value": 1520.75,
    }
    assert "gdpr_optin" not in attributes


def test_booleans_from_strings_where_schema_says_boolean():
    schema = {
        "properties": {
            "SubscriberKey": {"type": "string"},
            "Flag": {"type": "boolean"},
            "Text": {"type": "string"},
            "Opt": {"type": ["string", "null"]},
        }
    }
    m = mapper(
        schema,
        attribute_mappings={"Flag": "is_vip", "Text": "motto", "Opt": "sms_optin"},
        fixed_value_mappings={},
    )
    user = m.map_record({"SubscriberKey": "C", "Flag": "True", "Text": "yes", "Opt": "1"}).user
    assert user["attributes"] == {"sms_optin": True, "custom": {"is_vip": True, "motto": "yes"}}


def test_gdpr_optin_false_only_when_source_says_false():
    m = mapper(attribute_mappings={"G": "gdpr_optin"}, fixed_value_mappings={"data_source": "x"})
    assert m.map_record({"SubscriberKey": "C", "G": None}).user["attributes"] == {
        "custom": {"data_source": "x"}
    }
    assert "gdpr_optin" not in m.map_record({"SubscriberKey": "C", "G": ""}).user["attributes"]
    dropped = m.map_record({"SubscriberKey": "C", "G": "maybe"})
    assert "gdpr_optin" not in dropped.user["attributes"]
    assert dropped.issues[0].reason == "not_a_boolean"
    assert m.map_record({"SubscriberKey": "C", "G": "no"}).user["attributes"]["gdpr_optin"] is False
    assert (
        m.map_record({"SubscriberKey": "C", "G": False}).user["attributes"]["gdpr_optin"] is False
    )


def test_empty_string_policy():
    omit = mapper().map_record(customer(1, City="", LastName="   "))
    assert "city" not in omit.user["attributes"]
    assert "surname" not in omit.user["attributes"]
    send = mapper(empty_string_policy="send").map_record(customer(1, City=""))
    assert send.user["attributes"]["city"] == ""


def test_invalid_attribute_policies():
    skip_attr = mapper().map_record(customer(1, BirthDate="not a date"))
    assert "birthday" not in skip_attr.user["attributes"]
    assert [(i.target, i.reason) for i in skip_attr.issues] == [("birthday", "not_a_date")]
    skip_record = mapper(invalid_attribute_policy="skip_record").map_record(
        customer(1, BirthDate="not a date")
    )
    assert skip_record.user is None
    assert skip_record.skip_reason == "invalid_attribute"


def test_no_attributes_is_skipped():
    m = mapper(attribute_mappings={"FirstName": "name"}, fixed_value_mappings={})
    result = m.map_record({"SubscriberKey": "C1", "FirstName": None})
    assert result.user is None
    assert result.skip_reason == "no_attributes"


def test_fixed_values_are_converted_and_placed():
    m = mapper(fixed_value_mappings={"data_source": "sfmc", "gdpr_optin": "true", "age": "42"})
    attrs = m.map_record(customer(1)).user["attributes"]
    assert attrs["gdpr_optin"] is True
    assert attrs["age"] == 42
    assert attrs["custom"]["data_source"] == "sfmc"


def test_not_append_can_be_disabled():
    assert "not_append" not in mapper(not_append=False).map_record(customer(1)).user


def test_phone_and_email_attributes_are_normalised():
    schema = {"properties": {"SubscriberKey": {"type": "string"}, "P": {"type": "string"}}}
    m = mapper(
        schema,
        attribute_mappings={"P": "phone_number", "E": "email"},
        fixed_value_mappings={},
        phone_default_region="GB",
    )
    attrs = m.map_record({"SubscriberKey": "C", "P": "020 7946 0958", "E": "X@Y.ZZ"}).user[
        "attributes"
    ]
    assert attrs == {"phone_number": "+442079460958", "email": "x@y.zz"}


def test_custom_date_and_array_attributes():
    schema = {
        "properties": {
            "SubscriberKey": {"type": "string"},
            "Last": {"type": "string", "format": "date-time"},
            "Tags": {"type": "array", "items": {"type": "string"}},
            "Lists": {"type": "array", "items": {"type": "integer"}},
        }
    }
    m = mapper(
        schema,
        attribute_mappings={"Last": "last_order_at", "Tags": "tags", "Lists": "static_segment_id"},
        fixed_value_mappings={},
    )
    attrs = m.map_record(
        {
            "SubscriberKey": "C",
            "Last": "2026-07-01T11:30:00+02:00",
            "Tags": ["a", "b"],
            "Lists": [1, "2"],
        }
    ).user["attributes"]
    assert attrs == {
        "static_segment_id": [1, 2],
        "custom": {"last_order_at": "2026-07-01T09:30:00Z", "tags": ["a", "b"]},
    }
