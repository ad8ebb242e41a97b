import dataclasses
import json
import subprocess
from decimal import Decimal

import pytest
from singer_sdk.plugin_base import JSONSchemaValidator
from tap_sfmc_de.config_schema import CONFIG_SCHEMA
from tap_sfmc_de.errors import SfmcConfigError
from tap_sfmc_de.retries import RetryPolicy
from tap_sfmc_de.settings import (
    Settings,
    describe_config_error,
    is_loopback_host,
    secret_settings,
    validate_base_url,
)
from tap_sfmc_de.tap import TapSfmcDe
from tap_sfmc_de.values import parse_offset
from tap_sfmc_de_testkit import TAP_BIN


def test_valid_config_has_defaults(config):
    config.pop("page_size")
    config.pop("max_pages_per_run")
    config.pop("auth_base_url")
    settings = Settings.from_config(config)
    assert settings.page_size == 2500
    assert settings.max_pages_per_run == 50
    assert settings.replication_key == "ModifiedDate"
    assert settings.fetch_mode == "incremental"
    assert (
        settings.auth_base_url
        == "https://mcsandbox0000000000000000000.auth.marketingcloudapis.com/"
    )
    assert "s3cr3t" not in repr(settings)


@pytest.mark.parametrize(
    "subdomain",
    [
        "mcsandbox000000000000000000",  # 27
        "mcsandbox00000000000000000000",  # 29
        "Mcsandbox0000000000000000000",
        "xxsandbox0000000000000000000",
        "mcsandbox00000000000000.evil",
        "mcsandbox000000000000000/../",
        "",
    ],
)
def test_subdomain_is_validated(config, subdomain):
    config["subdomain"] = subdomain
    with pytest.raises(SfmcConfigError, match="subdomain"):
        Settings.from_config(config)


def test_hyphenated_subdomain_is_fine(config):
    config["subdomain"] = "mc563885gzs27c5t9-63k636ttgm"
    assert Settings.from_config(config).subdomain == "mc563885gzs27c5t9-63k636ttgm"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://auth.example.test", True),
        ("http://127.0.0.1:8080/", True),
        ("http://127.1.2.3:8080", True),
        ("http://localhost:1/", True),
        ("http://[::1]:9/", True),
        ("http://example.com/", False),
        ("http://10.0.0.1/", False),
        ("ftp://127.0.0.1/", False),
        ("https://user:pw@example.com/", False),
        ("https://example.com/?x=1", False),
    ],
)
def test_base_urls(url, ok):
    if ok:
        assert validate_base_url(url, "auth_base_url").endswith("/")
    else:
        with pytest.raises(SfmcConfigError, match="auth_base_url"):
            validate_base_url(url, "auth_base_url")


def test_loopback():
    assert is_loopback_host("127.0.0.1")
    assert not is_loopback_host("128.0.0.1")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("page_size", 2501, "page_size"),
        ("page_size", 0, "page_size"),
        ("max_pages_per_run", 0, "max_pages_per_run"),
        ("max_pages_per_run", 4, "between 5 and"),
        ("fetch_mode", "delta", "fetch_mode"),
        ("filter_support", "maybe", "filter_support"),
        ("auth_flow", "password", "auth_flow"),
        ("sfmc_timezone_offset", "America/Chicago", "sfmc_timezone_offset"),
        ("account_id", "abc", "account_id"),
        ("data_extension_keys", [], "data_extension_keys"),
        ("client_secret", "", "client_secret"),
        ("replication_keys_by_de", ["x"], "replication_keys_by_de"),
        ("start_date", "yesterday", "'start_date' must be an ISO-8601 date-time"),
        ("max_retry_after_seconds", 3601, "maximum of 3600 in config.'max_retry_after_seconds'"),
        ("retry_budget_seconds", -1, "minimum of 0 in config.'retry_budget_seconds'"),
        ("retry_budget_seconds", "long", "not of type 'number'"),
    ],
)
def test_invalid_settings(config, key, value, match):
    config[key] = value
    with pytest.raises(SfmcConfigError, match=match):
        Settings.from_config(config)


def test_per_de_replication_key(config):
    config["replication_keys_by_de"] = {"Orders": "UpdatedAt"}
    settings = Settings.from_config(config)
    assert settings.replication_key_for("Orders") == "UpdatedAt"
    assert settings.replication_key_for("Customers") == "ModifiedDate"


SECRET_VALUES = [987654321123, 98765.4321, ["s3cr3t-in-a-list"], {"s3cr3t-key": "s3cr3t-v"}, True]


def secret_setting_names():
    return sorted(secret_settings(TapSfmcDe.config_jsonschema))


def test_the_secret_settings_are_known():
    assert secret_setting_names() == ["client_secret", "refresh_token"]


@pytest.mark.parametrize("name", secret_setting_names())
@pytest.mark.parametrize("value", SECRET_VALUES, ids=lambda v: type(v).__name__)
def test_a_secret_of_the_wrong_type_is_never_echoed(config, tmp_path, name, value):
    """Through the real CLI: jsonschema's message starts with the offending value."""
    config[name] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    proc = subprocess.run(
        [TAP_BIN, "--config", str(path), "--discover"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert f"Setting '{name}' must be of type string" in proc.stderr
    assert "value not shown" in proc.stderr
    rendered = {str(value), repr(value), json.dumps(value), "s3cr3t", "987654321123", "98765"}
    for text in rendered:
        assert text not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_other_schema_errors_still_show_the_value(config):
    config["page_size"] = "lots"
    schema = TapSfmcDe.config_jsonschema
    errors = [
        describe_config_error(e, secret_settings(schema))
        for e in JSONSchemaValidator(schema).iter_errors(config)
    ]
    assert errors == ["'lots' is not of type 'integer', 'null' in config['page_size']"]


def test_credentials_in_a_base_url_are_not_echoed(config):
    config["auth_base_url"] = "https://user:pa55word@auth.example.test/"
    with pytest.raises(SfmcConfigError, match="must not contain a user name or password") as info:
        Settings.from_config(config)
    assert "pa55word" not in str(info.value)


def test_retry_limits_come_from_the_config_schema(config):
    schema = TapSfmcDe.config_jsonschema["properties"]
    retry = Settings.from_config(config).retry
    assert retry.max_retry_after_seconds == schema["max_retry_after_seconds"]["default"] == 300
    assert retry.retry_budget_seconds == schema["retry_budget_seconds"]["default"]
    config["max_retry_after_seconds"] = Decimal("0.5")  # how the SDK reads a config file
    assert Settings.from_config(config).retry.max_retry_after_seconds == 0.5


# Settings fields that are not named like their setting.
_FIELD_OF = {
    "sfmc_timezone_offset": lambda s: s.timezone.utcoffset(None),
}
_RETRY_FIELDS = {f.name for f in dataclasses.fields(RetryPolicy)}


def _required_only():
    required = {
        "client_id": "cid",
        "client_secret": "s3cr3t",
        "subdomain": "mcsandbox0000000000000000000",
        "data_extension_keys": ["Customers"],
    }
    assert set(required) == set(CONFIG_SCHEMA["required"])
    return required


def _schema_default(name, default):
    if name == "sfmc_timezone_offset":
        return parse_offset(default).utcoffset(None)
    return default


@pytest.mark.parametrize("via", ["sdk", "from_config"])
def test_settings_from_required_keys_only_are_the_schema_defaults(via, monkeypatch):
    config = _required_only()
    if via == "sdk":  # the SDK fills the defaults while validating, before from_config
        monkeypatch.setattr(TapSfmcDe, "discover_streams", lambda _self: [])  # no network
        validated = TapSfmcDe(config=config, validate_config=True).config
        assert validated["page_size"] == CONFIG_SCHEMA["properties"]["page_size"]["default"]
        settings = Settings.from_config(validated)
    else:  # a raw config gets the same defaults, from the same schema
        settings = Settings.from_config(config)
    builtin: dict = {"properties": {}}
    TapSfmcDe.append_builtin_config(builtin)  # the SDK's settings, not ours
    defaults = {
        name: prop["default"]
        for name, prop in CONFIG_SCHEMA["properties"].items()
        if "default" in prop and name not in builtin["properties"]
    }
    assert len(defaults) >= 15
    for name, default in defaults.items():
        if name in _FIELD_OF:
            value = _FIELD_OF[name](settings)
        elif name in _RETRY_FIELDS:
            value = getattr(settings.retry, name)
        else:
            assert hasattr(settings, name), f"setting {name} has a default but no Settings field"
            value = getattr(settings, name)
        expected = _schema_default(name, default)
        assert value == expected, f"{name}: settings say {value!r}, the schema {expected!r}"
    # Settings without a schema default are off or derived.
    assert settings.account_id is None
    assert settings.start_date is None
    assert settings.auth_base_url.startswith("https://mcsandbox0000000000000000000.auth.")


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("page_size", 1, 2500), ("max_pages_per_run", 5, 1_000_000), ("max_retries", 0, 100)],
)
def test_bounds_come_from_the_schema_only(config, name, low, high):
    prop = CONFIG_SCHEMA["properties"][name]
    assert (prop["minimum"], prop["maximum"]) == (low, high)  # what --about and meltano.yml show
    for ok in (low, high):
        Settings.from_config({**config, name: ok})
    for bad in (low - 1, high + 1):
        with pytest.raises(SfmcConfigError, match=f"must be between {low} and {high}"):
            Settings.from_config({**config, name: bad})
