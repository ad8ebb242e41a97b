from tap_sfmc_de.schema import DEField, build_schema, key_properties, stream_name_for_key
from tap_sfmc_de.soap import field_retrieve_envelope, parse_field_retrieve
from tap_sfmc_de_testkit import fields_xml


def test_type_mapping_and_keys():
    fields = [
        DEField("ModifiedDate", "Date", ordinal=2),
        DEField("SubscriberKey", "Text", is_primary_key=True, max_length=254, ordinal=0),
        DEField("Email", "EmailAddress", ordinal=1),
        DEField("Phone", "Phone", ordinal=3),
        DEField("Locale", "Locale", ordinal=4),
        DEField("Points", "Number", ordinal=5),
        DEField("Value", "Decimal", max_length=12, scale=2, ordinal=6),
        DEField("OptIn", "Boolean", ordinal=7),
        DEField("Odd", "SomethingNew", ordinal=8),
    ]
    schema = build_schema(fields)
    props = schema["properties"]
    assert list(props) == [
        *("SubscriberKey", "Email", "ModifiedDate", "Phone", "Locale"),
        *("Points", "Value", "OptIn", "Odd"),
    ]
    assert props["SubscriberKey"] == {"type": ["string"], "maxLength": 254}
    assert props["Email"] == {"type": ["string", "null"], "maxLength": 254}
    assert props["Phone"]["maxLength"] == 50
    assert props["Locale"]["maxLength"] == 5
    assert props["ModifiedDate"] == {"type": ["string", "null"], "format": "date-time"}
    assert props["Points"] == {"type": ["integer", "null"]}
    assert props["Value"] == {"type": ["number", "null"]}
    assert props["OptIn"] == {"type": ["boolean", "null"]}
    assert props["Odd"] == {"type": ["string", "null"]}
    assert schema["required"] == ["SubscriberKey"]
    assert key_properties(fields) == ["SubscriberKey"]
    assert key_properties([DEField("a", "Text")]) == []


def test_stream_names_are_stable_slugs():
    assert stream_name_for_key("Customers") == "de_customers"
    assert stream_name_for_key("My-DE.2024 (copy)") == "de_my_de_2024_copy"
    assert stream_name_for_key("8F1C-ABCD") == "de_8f1c_abcd"
    assert stream_name_for_key("---") == "de_unnamed"


def test_soap_parse_sorts_by_ordinal_and_strips_names():
    status, request_id, fields = parse_field_retrieve(fields_xml())
    assert (status, request_id) == ("OK", "r1")
    assert [f.name for f in fields] == ["Id", "ModifiedDate", "Points", "Amount", "OptIn", "Email"][
        ::-1
    ]
    ordered = sorted(fields, key=lambda f: f.ordinal)
    assert ordered[0].name == "Id"
    assert ordered[0].is_primary_key
    assert ordered[3].scale == 2


def test_envelope_escapes_key_and_carries_token_only_in_header():
    text = field_retrieve_envelope("tok<en>", "A&B<C>")
    assert "<Value>A&amp;B&lt;C&gt;</Value>" in text
    assert '<fueloauth xmlns="http://exacttarget.com">tok&lt;en&gt;</fueloauth>' in text
    assert "<ObjectType>DataExtensionField</ObjectType>" in text
    assert "ContinueRequest" not in text
    assert "<ContinueRequest>r9</ContinueRequest>" in field_retrieve_envelope("t", "k", "r9")
