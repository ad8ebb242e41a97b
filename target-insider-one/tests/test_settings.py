import pytest
from singer_sdk.exceptions import ConfigValidationError
from target_insider_one.config_schema import CONFIG_SCHEMA
from target_insider_one.settings import DEFAULT_API_BASE_URL, parse_settings
from target_insider_one.target import TargetInsiderOne

from .conftest import DEMO_MAPPING


def base(**overrides):
    config = {"partner_name": "Acme", "api_key": "k", **DEMO_MAPPING}
    config.update(overrides)
    return config


def errors_of(config) -> str:
    with pytest.raises(ConfigValidationError) as info:
        parse_settings(config)
    return "\n".join(info.value.errors)


def test_defaults_and_lowercase_partner():
    settings = parse_settings(base())
    assert settings.partner_name == "acme"
    assert settings.api_base_url == DEFAULT_API_BASE_URL
    assert settings.upsert_url == DEFAULT_API_BASE_URL + "/api/user/v1/upsert"
    assert settings.batch_size_rows == 1000
    assert settings.max_request_bytes == 5_000_000
    assert settings.max_concurrent_requests == 4
    assert settings.not_append is True
    assert settings.skip_hook is False
    assert settings.fast_fail is False
    assert settings.invalid_identifier_policy == "skip_identifier"
    assert settings.empty_string_policy == "omit"
    assert settings.phone.validation == "valid"
    assert str(settings.dead_letter_path).startswith("output/dead-letters/insider-")
    custom = {t.name for _, t in settings.attributes if t.custom}
    assert custom == {"loyalty_points", "lifetime_value"}
    assert [(t.name, t.custom, v) for t, v in settings.fixed_values] == [
        ("data_source", True, "sfmc")
    ]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://localhost:1234/", "http://[::1]:99", "http://127.5.5.5"],
)
def test_http_allowed_for_loopback(url):
    assert parse_settings(base(api_base_url=url)).api_base_url == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://example.com", "http://10.0.0.1", "ftp://x", "nope"])
def test_http_refused_elsewhere(url):
    assert "api_base_url" in errors_of(base(api_base_url=url))


def test_identifier_mapping_errors():
    assert "at least one" in errors_of(base(identifier_mappings=[]))
    assert "at least one" in errors_of(base(identifier_mappings=None))
    assert "not one of" in errors_of(base(identifier_mappings=[{"type": "emial", "field": "x"}]))
    assert "name is required" in errors_of(
        base(identifier_mappings=[{"type": "custom", "field": "x"}])
    )
    assert "mapped twice" in errors_of(
        base(identifier_mappings=[{"type": "email", "field": "a"}, {"type": "email", "field": "b"}])
    )
    ok = parse_settings(
        base(identifier_mappings=[{"type": "custom", "field": "Loyalty", "name": "loyalty_id"}])
    )
    assert ok.identifiers[0].label == "custom.loyalty_id"


def test_attribute_errors():
    assert "not valid" in errors_of(base(attribute_mappings={"A": "Has Space"}))
    assert "mapped from both" in errors_of(base(attribute_mappings={"A": "city", "B": "city"}))
    assert "both attribute_mappings and fixed_value_mappings" in errors_of(
        base(fixed_value_mappings={"city": "x"})
    )
    assert "needs at least one entry" in errors_of(
        base(attribute_mappings={}, fixed_value_mappings={})
    )
    forced = parse_settings(base(attribute_mappings={"A": "custom.city"}, fixed_value_mappings={}))
    assert forced.attributes[0][1].custom is True


def test_other_errors():
    assert "phone_default_region" in errors_of(base(phone_default_region="GBR"))
    # Well-formed but unknown codes would make every national number invalid.
    assert "the United Kingdom is GB" in errors_of(base(phone_default_region="uk"))
    assert "got 'XX'" in errors_of(base(phone_default_region="XX"))
    assert parse_settings(base(phone_default_region="gb")).phone.default_region == "GB"
    assert "invalid_identifier_policy" in errors_of(base(invalid_identifier_policy="drop"))
    assert "max_concurrent_requests" in errors_of(base(max_concurrent_requests=64))
    assert "partner_name" in errors_of(base(partner_name="  "))


def test_target_rejects_bad_config_via_json_schema():
    with pytest.raises(ConfigValidationError):
        TargetInsiderOne(config=base(batch_size_rows=1001))
    with pytest.raises(ConfigValidationError):
        TargetInsiderOne(config=base(identifier_mappings=[{"type": "fax", "field": "x"}]))


def test_config_accepts_json_strings_from_env(monkeypatch):
    # Meltano passes arrays/objects as JSON; env vars use the SDK's JSON parsing.
    monkeypatch.setenv("TARGET_INSIDER_ONE_PARTNER_NAME", "acme")
    monkeypatch.setenv("TARGET_INSIDER_ONE_API_KEY", "k")
    monkeypatch.setenv(
        "TARGET_INSIDER_ONE_IDENTIFIER_MAPPINGS", '[{"type": "uuid", "field": "SubscriberKey"}]'
    )
    monkeypatch.setenv("TARGET_INSIDER_ONE_ATTRIBUTE_MAPPINGS", '{"FirstName": "name"}')
    monkeypatch.setenv("TARGET_INSIDER_ONE_FIXED_VALUE_MAPPINGS", '{"data_source": "sfmc"}')
    target = TargetInsiderOne(config={}, parse_env_config=True)
    settings = target.runtime.settings
    assert settings.identifiers[0].field == "SubscriberKey"
    assert settings.attributes[0][0] == "FirstName"


def test_about_lists_every_setting_and_marks_secret():
    schema = TargetInsiderOne.config_jsonschema
    assert schema["properties"]["api_key"].get("secret") is True
    for name in (
        "partner_name",
        "api_base_url",
        "identifier_mappings",
        "attribute_mappings",
        "fixed_value_mappings",
        "skip_hook",
        "fast_fail",
        "normalize_phone_numbers",
        "phone_default_region",
        "phone_validation",
        "phone_rewrite_00_prefix",
        "phone_extension_policy",
        "invalid_identifier_policy",
        "batch_size_rows",
        "max_request_bytes",
        "max_concurrent_requests",
        "request_timeout",
        "max_retries",
        "backoff_base_seconds",
        "backoff_max_seconds",
        "dry_run",
        "dry_run_path",
        "dead_letter_path",
        "not_append",
        "empty_string_policy",
    ):
        assert name in schema["properties"], name


def test_decimal_numbers_from_json_config_files():
    from decimal import Decimal

    settings = parse_settings(
        base(backoff_base_seconds=Decimal("0.01"), request_timeout=Decimal("2.5"))
    )
    assert settings.backoff_base_seconds == 0.01
    assert isinstance(settings.request_timeout, float)


def test_bad_fixed_value_is_a_config_error():
    with pytest.raises(ConfigValidationError) as info:
        TargetInsiderOne(config=base(fixed_value_mappings={"gdpr_optin": "maybe"}))
    assert "fixed_value_mappings" in str(info.value)


def test_schema_errors_never_echo_the_api_key():
    # The SDK's schema errors quote the value: a non-string key would be printed.
    with pytest.raises(ConfigValidationError) as info:
        TargetInsiderOne(config=base(api_key=9876543210123))
    assert info.value.errors == ["*** is not of type 'string' in config['api_key']"]


def test_missing_identifier_mappings_error_shows_the_fix():
    config = base()
    del config["identifier_mappings"]
    with pytest.raises(ConfigValidationError) as info:
        TargetInsiderOne(config=config)
    assert any('{"type": "email", "field": "EmailAddress"}' in e for e in info.value.errors)


def test_delivery_settings_defaults_and_bounds_come_from_the_schema():
    settings = TargetInsiderOne(config=base()).runtime.settings
    assert settings.retry_budget_seconds == 300  # five minutes per request
    assert settings.max_retries == 20
    assert settings.max_dead_letters is None  # alerts are off by default
    assert settings.max_dead_letter_percent is None
    on = TargetInsiderOne(config=base(max_dead_letters=10, max_dead_letter_percent=2.5))
    assert on.runtime.settings.max_dead_letters == 10
    assert on.runtime.settings.max_dead_letter_percent == 2.5
    for bad in (
        {"max_dead_letter_percent": 101},
        {"max_dead_letters": -1},
        {"retry_budget_seconds": -1},
    ):
        with pytest.raises(ConfigValidationError):
            TargetInsiderOne(config=base(**bad))


# Settings fields that are not named like their setting.
_FIELD_OF = {
    "normalize_phone_numbers": lambda s: s.phone.normalize,
    "phone_validation": lambda s: s.phone.validation,
    "phone_rewrite_00_prefix": lambda s: s.phone.rewrite_00_prefix,
    "phone_extension_policy": lambda s: s.phone.extension_policy,
    "blocked_identifier_values": lambda s: sorted(s.blocked_identifier_values),
}


def _required_only():
    required = {
        "partner_name": "acme",
        "api_key": "k",
        "identifier_mappings": [{"type": "uuid", "field": "SubscriberKey"}],
    }
    assert set(required) == set(CONFIG_SCHEMA["required"])
    # Not required by the schema, but Insider rejects users without attributes.
    return {**required, "fixed_value_mappings": {"data_source": "sfmc"}}


@pytest.mark.parametrize("via", ["sdk", "parse_settings"])
def test_settings_from_required_keys_only_are_the_schema_defaults(via):
    config = _required_only()
    if via == "sdk":  # the SDK fills the defaults while validating, before parse_settings
        settings = TargetInsiderOne(config=config).runtime.settings
    else:  # a raw config gets the same defaults, from the same schema
        settings = parse_settings(config)
    builtin: dict = {"properties": {}}
    TargetInsiderOne.append_builtin_config(builtin)  # the SDK's settings, not ours
    defaults = {
        name: prop["default"]
        for name, prop in CONFIG_SCHEMA["properties"].items()
        if "default" in prop and name not in builtin["properties"]
    }
    assert len(defaults) >= 20
    for name, default in defaults.items():
        if name in _FIELD_OF:
            value = _FIELD_OF[name](settings)
        else:
            assert hasattr(settings, name), f"setting {name} has a default but no Settings field"
            value = getattr(settings, name)
        expected = sorted(default) if name == "blocked_identifier_values" else default
        assert value == expected, f"{name}: settings say {value!r}, the schema {default!r}"
    # Settings without a schema default are off or derived.
    assert settings.max_dead_letters is None
    assert settings.max_dead_letter_percent is None
    assert settings.phone.default_region is None
    assert str(settings.dead_letter_path).startswith("output/dead-letters/insider-")


def test_bounds_come_from_the_schema_only():
    # parse_settings on a raw config reports the schema's bound (no second copy of it).
    schema = CONFIG_SCHEMA["properties"]["max_concurrent_requests"]
    too_many = schema["maximum"] + 1
    assert f"maximum of {schema['maximum']}" in errors_of(base(max_concurrent_requests=too_many))
    assert parse_settings(base(max_concurrent_requests=schema["maximum"]))
    assert "0.05 is less than the minimum of 0.1" in errors_of(base(request_timeout=0.05))
