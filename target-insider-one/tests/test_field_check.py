import logging

from target_insider_one.client import InsiderConfigError
from target_insider_one.field_check import check_stream_fields, closest, unknown_settings
from target_insider_one.settings import parse_settings
from target_insider_one.target import TargetInsiderOne

from .conftest import (
    CUSTOMERS_SCHEMA,
    DEMO_MAPPING,
    UPSERT_URL,
    customer,
    ok_callback,
    record_msg,
    run_target,
    schema_msg,
    state_msg,
    upsert_calls,
)


def settings(**overrides):
    return parse_settings({"partner_name": "p", "api_key": "k", **DEMO_MAPPING, **overrides})


def test_closest_prefers_a_case_insensitive_match():
    assert closest("emailaddress", ["EmailAddress", "EmailAddres"]) == "EmailAddress"
    assert closest("EmailAdress", ["SubscriberKey", "EmailAddress"]) == "EmailAddress"
    assert closest("zzz", ["SubscriberKey"]) is None


def test_no_identifier_field_in_the_schema_is_an_error_naming_field_stream_and_fields():
    schema = {"properties": {"subscriber_key": {}, "Email": {}}}
    errors, _ = check_stream_fields(settings(), "Leads", schema)
    assert len(errors) == 3
    assert errors[0].startswith(
        "identifier_mappings[0].field 'SubscriberKey' (uuid) is not a field of stream 'Leads' "
        "(did you mean 'subscriber_key'?)"
    )
    assert "the stream's fields: subscriber_key, Email" in errors[0]


def test_missing_identifier_or_attribute_fields_are_warnings_when_one_identifier_remains():
    schema = {"properties": {"SubscriberKey": {}, "EmailAdress": {}, "FirstName": {}}}
    errors, warnings = check_stream_fields(settings(), "Customers", schema)
    assert errors == []
    assert (
        "identifier_mappings[1].field 'EmailAddress' (email) is not a field of stream "
        "'Customers' (did you mean 'EmailAdress'?): that identifier is never sent" in warnings[0]
    )
    assert any("attribute_mappings field 'City' (-> city)" in w for w in warnings)
    assert not any(w.startswith("attribute_mappings field 'FirstName'") for w in warnings)


def test_schema_without_properties_is_not_checked():
    assert check_stream_fields(settings(), "s", {"type": "object"}) == ([], [])


def test_stream_without_identifier_fields_stops_before_anything_is_sent(requests_mock, make_config):
    requests_mock.post(UPSERT_URL, json=ok_callback)
    good = [schema_msg(), record_msg(customer(1))]
    bad = [
        schema_msg("Leads", {"properties": {"subscriber_key": {"type": "string"}}}),
        record_msg({"subscriber_key": "x"}, "Leads"),
    ]
    result = run_target(make_config(), [*bad, *good, state_msg(1)], expect_error=True)
    assert isinstance(result.error, InsiderConfigError)
    assert "stream 'Leads'" in result.error.message
    assert upsert_calls(requests_mock) == 0
    assert result.states == []


def test_missing_attribute_field_is_in_the_log_and_the_summary(requests_mock, make_config, caplog):
    requests_mock.post(UPSERT_URL, json=ok_callback)
    schema = {
        "properties": {k: v for k, v in CUSTOMERS_SCHEMA["properties"].items() if k != "City"}
    }
    record = customer(1)
    del record["City"]
    with caplog.at_level(logging.WARNING):
        result = run_target(make_config(), [schema_msg(schema=schema), record_msg(record)])
    text = "attribute_mappings field 'City' (-> city) is not a field of stream 'Customers'"
    assert text in caplog.text
    summary = result.target.runtime.stats.human_summary(
        status="succeeded", dead_letter_path=None, dry_run=False
    )
    assert f"WARNING: {text}" in summary
    assert result.stats["users_upserted"] == 1


def test_unknown_settings_are_warned_about_with_the_closest_name_never_the_value(
    make_config, caplog
):
    config = make_config(batch_size=500, api_secret="hunter2-value", flatening_enabled=True)
    with caplog.at_level(logging.WARNING):
        target = TargetInsiderOne(config=config)
    assert (
        "unknown setting 'batch_size' is ignored (did you mean 'batch_size_rows'?)" in caplog.text
    )
    assert "'flatening_enabled' is ignored (did you mean 'flattening_enabled'?)" in caplog.text
    assert "unknown setting 'api_secret' is ignored" in caplog.text
    assert "hunter2-value" not in caplog.text
    assert "500" not in caplog.text
    assert len(target.runtime.stats.warnings) == 3
    # the SDK's built-in settings are known
    assert unknown_settings({"stream_maps": {}, "validate_records": True}, []) != []
    caplog.clear()
    TargetInsiderOne(
        config=make_config(
            stream_maps={}, validate_records=False, flattening_enabled=True, flattening_max_depth=1
        )
    )
    assert "unknown setting" not in caplog.text
