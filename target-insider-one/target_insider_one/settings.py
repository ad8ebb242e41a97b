"""Typed, validated view of the target's configuration."""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.typing import DEFAULT_JSONSCHEMA_VALIDATOR, extend_validator_with_defaults

from target_insider_one.config_schema import (
    CONFIG_SCHEMA,
    DEFAULT_API_BASE_URL,
    MAX_USERS_PER_REQUEST,
    IdentifierType,
    InvalidAttributePolicy,
    InvalidIdentifierPolicy,
)
from target_insider_one.phone import PhoneOptions

__all__ = ["DEFAULT_API_BASE_URL", "MAX_USERS_PER_REQUEST", "Settings", "parse_settings"]

UPSERT_PATH = "/api/user/v1/upsert"
IDENTIFIER_TYPES = tuple(IdentifierType)
# The validator the SDK runs on the config (PluginBase._validate_config): it fills the
# schema's defaults into the config while it checks types, bounds and allowed values.
_SchemaValidator = extend_validator_with_defaults(DEFAULT_JSONSCHEMA_VALIDATOR)
# Our settings only: the SDK adds its built-in settings to CONFIG_SCHEMA in place.
_OWN_SCHEMA = copy.deepcopy(CONFIG_SCHEMA)

# Insider's default attributes go at the root of `attributes`; everything else under `custom`.
DEFAULT_ATTRIBUTES = frozenset(
    {
        "name",
        "surname",
        "email",
        "phone_number",
        "uuid",
        "email_optin",
        "sms_optin",
        "whatsapp_optin",
        "gdpr_optin",
        "birthday",
        "gender",
        "age",
        "language",
        "country",
        "city",
        "locale",
        "lo",
        "static_segment_id",
    }
)
IDENTIFIER_MAPPINGS_REQUIRED = (
    "identifier_mappings needs at least one entry, e.g. "
    '[{"type": "email", "field": "EmailAddress"}]; valid types: ' + ", ".join(IDENTIFIER_TYPES)
)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")


@dataclass(frozen=True)
class IdentifierMapping:
    """One identifier: its Insider type, its source field and (custom only) its name."""

    type: str
    field: str
    name: str | None = None

    @property
    def label(self) -> str:
        """Name used in reasons and summaries (``email``, ``custom.loyalty_id``)."""
        return f"custom.{self.name}" if self.type == "custom" else self.type


@dataclass(frozen=True)
class AttributeTarget:
    """Where an attribute goes in the payload."""

    name: str
    custom: bool

    @property
    def label(self) -> str:
        """``name`` for default attributes, ``custom.name`` for custom ones."""
        return f"custom.{self.name}" if self.custom else self.name


def parse_attribute_target(raw: str) -> AttributeTarget:
    """Parse an attribute name; a ``custom.`` prefix forces a custom attribute.

    Args:
        raw: Attribute name from config.

    Returns:
        The target.

    Raises:
        ValueError: If the name is not a valid Insider attribute name.
    """
    name = raw.strip()
    forced_custom = name.startswith("custom.")
    if forced_custom:
        name = name[len("custom.") :]
    if not _NAME_RE.fullmatch(name):
        msg = (
            f"attribute name {raw!r} is not valid: Insider attribute names are lowercase "
            "letters, digits and underscores (no spaces, no 'c_' prefix)"
        )
        raise ValueError(msg)
    return AttributeTarget(name=name, custom=forced_custom or name not in DEFAULT_ATTRIBUTES)


@dataclass(frozen=True)
class Settings:
    """Everything the sink, mapper and client need, validated."""

    partner_name: str
    api_key: str
    api_base_url: str
    identifiers: tuple[IdentifierMapping, ...]
    attributes: tuple[tuple[str, AttributeTarget], ...]
    fixed_values: tuple[tuple[AttributeTarget, Any], ...]
    # Each field below is the setting of the same name (defaults: the config schema).
    skip_hook: bool
    fast_fail: bool
    not_append: bool
    phone: PhoneOptions
    normalize_emails: bool
    blocked_identifier_values: frozenset[str]
    invalid_identifier_policy: InvalidIdentifierPolicy
    invalid_attribute_policy: InvalidAttributePolicy
    empty_string_policy: str
    batch_size_rows: int
    max_request_bytes: int
    max_concurrent_requests: int
    request_timeout: float
    max_retries: int
    retry_budget_seconds: float
    backoff_base_seconds: float
    backoff_max_seconds: float
    max_dead_letters: int | None  # no default: the alert is off
    max_dead_letter_percent: float | None
    dry_run: bool
    preflight: bool
    dry_run_path: Path
    dead_letter_path: Path

    @property
    def upsert_url(self) -> str:
        """Full URL of the upsert endpoint."""
        return self.api_base_url + UPSERT_PATH


def _run_stamp() -> str:
    return dt.datetime.now(tz=dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _check_base_url(raw: str, errors: list[str]) -> str:
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in {"http", "https"} or not host:
        errors.append(f"api_base_url {raw!r} must be an absolute http(s) URL")
        return url
    if parts.scheme == "http" and not _is_loopback(host):
        errors.append(
            f"api_base_url {raw!r} uses plain http: only https is allowed, except for "
            "loopback hosts (localhost, 127.0.0.0/8, ::1) used by local emulators"
        )
    if parts.query or parts.fragment:
        errors.append("api_base_url must not contain a query string or fragment")
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _parse_identifiers(raw: object, errors: list[str]) -> tuple[IdentifierMapping, ...]:
    if not isinstance(raw, list) or not raw:
        errors.append(IDENTIFIER_MAPPINGS_REQUIRED)
        return ()
    result: list[IdentifierMapping] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"identifier_mappings[{index}]"
        mapping = _parse_identifier(where, item, errors)
        if mapping is None:
            continue
        if mapping.label in seen:
            errors.append(f"{where}: identifier {mapping.label!r} is mapped twice")
            continue
        seen.add(mapping.label)
        result.append(mapping)
    return tuple(result)


def _parse_identifier(  # noqa: PLR0911 - one return per check
    where: str, item: object, errors: list[str]
) -> IdentifierMapping | None:
    if not isinstance(item, Mapping):
        errors.append(f"{where} must be an object with 'type' and 'field'")
        return None
    kind = str(item.get("type") or "").strip()
    source = str(item.get("field") or "").strip()
    name = item.get("name")
    name = str(name).strip() if name is not None else None
    if kind not in IDENTIFIER_TYPES:
        errors.append(
            f"{where}.type {kind!r} is not one of {', '.join(IDENTIFIER_TYPES)} "
            "(for a custom identifier use type 'custom' and set 'name')"
        )
        return None
    if not source:
        errors.append(f"{where}.field (the source field) is required")
        return None
    if kind != IdentifierType.CUSTOM:
        if name:
            errors.append(f"{where}.name is only used with type 'custom'")
            return None
        return IdentifierMapping(type=kind, field=source)
    if not name or not _NAME_RE.fullmatch(name):
        errors.append(
            f"{where}.name is required for type 'custom' and must be lowercase "
            "letters, digits and underscores (the identifier's name in Insider IRM)"
        )
        return None
    return IdentifierMapping(type=kind, field=source, name=name)


def _parse_attributes(raw: object, errors: list[str]) -> tuple[tuple[str, AttributeTarget], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        errors.append('attribute_mappings must be an object {"SourceField": "attribute"}')
        return ()
    result: list[tuple[str, AttributeTarget]] = []
    seen: dict[str, str] = {}
    for source, target in raw.items():
        if not isinstance(target, str) or not target.strip():
            errors.append(f"attribute_mappings[{source!r}] must be an attribute name")
            continue
        try:
            parsed = parse_attribute_target(target)
        except ValueError as exc:
            errors.append(f"attribute_mappings[{source!r}]: {exc}")
            continue
        if parsed.label in seen:
            errors.append(
                f"attribute {parsed.label!r} is mapped from both {seen[parsed.label]!r} "
                f"and {source!r}"
            )
            continue
        seen[parsed.label] = source
        result.append((str(source), parsed))
    return tuple(result)


def _parse_fixed(
    raw: object, mapped: set[str], errors: list[str]
) -> tuple[tuple[AttributeTarget, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        errors.append('fixed_value_mappings must be an object {"attribute": value}')
        return ()
    result: list[tuple[AttributeTarget, Any]] = []
    for name, value in raw.items():
        try:
            parsed = parse_attribute_target(str(name))
        except ValueError as exc:
            errors.append(f"fixed_value_mappings: {exc}")
            continue
        if parsed.label in mapped:
            errors.append(
                f"attribute {parsed.label!r} is in both attribute_mappings and "
                "fixed_value_mappings; keep one"
            )
            continue
        if value is None or isinstance(value, dict):
            errors.append(f"fixed_value_mappings[{name!r}] must be a string, number or boolean")
            continue
        result.append((parsed, value))
    return tuple(result)


def schema_checked(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The config with the schema's defaults filled in, and what the schema finds wrong.

    A null value counts as unset (it gets the default). In the target this repeats what
    the SDK already did to the same config: singer-sdk 0.54.9 validates the config in
    ``PluginBase.__init__`` (``_validate_config``) with a validator that fills the
    schema's defaults as it goes, and raises on errors, before ``TargetInsiderOne.__init__``
    calls :func:`parse_settings`. Doing it here too keeps :func:`parse_settings` correct
    for a config that did not come through the SDK (tests, benchmarks), with the same
    defaults and bounds: the schema's.

    Args:
        config: The raw or SDK-validated config.

    Returns:
        The filled-in config and the schema errors (formatted as the SDK formats them).
    """
    checked = {key: value for key, value in config.items() if value is not None}
    errors = [
        f"{error.message} in config[{']['.join(repr(p) for p in error.path)}]"
        if error.path
        else error.message
        for error in _SchemaValidator(_OWN_SCHEMA).iter_errors(checked)
    ]
    secret = config.get("api_key")
    if secret:  # a schema error quotes the offending value
        errors = [e.replace(str(secret), "***") for e in errors]
    return checked, errors


def _check_account(config: Mapping[str, Any], errors: list[str]) -> tuple[str, str]:
    partner = str(config.get("partner_name") or "").strip().lower()
    if not partner:
        errors.append("partner_name is required (your Insider One account/partner name)")
    api_key = str(config.get("api_key") or "")
    if not api_key.strip():
        errors.append("api_key is required (an Insider 'Unified Customer Database' API key)")
    return partner, api_key


def _check_region(raw: object, errors: list[str]) -> str | None:
    region = str(raw).strip().upper() if raw else None
    if region and region not in phonenumbers.SUPPORTED_REGIONS:
        # An unknown region would silently make every national number invalid.
        hint = " (the United Kingdom is GB)" if region == "UK" else ""
        errors.append(
            f"phone_default_region must be an ISO 3166-1 alpha-2 region code such as GB, "
            f"US or DE (got {region!r}){hint}"
        )
    return region


@dataclass(frozen=True)
class _Checked:
    """The settings that need more than the schema, once checked."""

    partner_name: str
    api_key: str
    api_base_url: str
    identifiers: tuple[IdentifierMapping, ...]
    attributes: tuple[tuple[str, AttributeTarget], ...]
    fixed_values: tuple[tuple[AttributeTarget, Any], ...]
    phone_default_region: str | None


def _check(config: Mapping[str, Any], errors: list[str]) -> _Checked:
    partner, api_key = _check_account(config, errors)
    base_url = _check_base_url(str(config.get("api_base_url") or ""), errors)
    identifiers = _parse_identifiers(config.get("identifier_mappings"), errors)
    attributes = _parse_attributes(config.get("attribute_mappings"), errors)
    fixed = _parse_fixed(
        config.get("fixed_value_mappings"), {t.label for _, t in attributes}, errors
    )
    if not attributes and not fixed and not errors:
        errors.append(
            "attribute_mappings or fixed_value_mappings needs at least one entry: Insider "
            "rejects users that carry identifiers but no attributes"
        )
    region = _check_region(config.get("phone_default_region"), errors)
    return _Checked(partner, api_key, base_url, identifiers, attributes, fixed, region)


def parse_settings(config: Mapping[str, Any]) -> Settings:
    """Check the configuration and build the typed settings from it.

    Every problem is reported at once (collect-all): a mapping with several mistakes is
    fixed in one round. Defaults, bounds and allowed values come from the config schema
    only (:mod:`target_insider_one.config_schema`); this adds the checks JSON schema
    cannot express.

    Args:
        config: The target's config (raw, or as the SDK validated it).

    Returns:
        The settings.

    Raises:
        ConfigValidationError: Listing every problem found.
    """
    config, errors = schema_checked(config)
    checked = _check(config, errors)
    if errors:
        raise ConfigValidationError(
            "Invalid target-insider-one configuration:\n  - " + "\n  - ".join(errors),
            errors=errors,
        )
    return _settings(config, checked)


def _settings(config: Mapping[str, Any], checked: _Checked) -> Settings:
    """Settings from a config the schema validated and filled: one field per setting."""
    stamp = _run_stamp()
    return Settings(
        partner_name=checked.partner_name,
        api_key=checked.api_key,
        api_base_url=checked.api_base_url,
        identifiers=checked.identifiers,
        attributes=checked.attributes,
        fixed_values=checked.fixed_values,
        skip_hook=config["skip_hook"],
        fast_fail=config["fast_fail"],
        not_append=config["not_append"],
        phone=PhoneOptions(
            normalize=config["normalize_phone_numbers"],
            default_region=checked.phone_default_region,
            validation=config["phone_validation"],
            rewrite_00_prefix=config["phone_rewrite_00_prefix"],
            extension_policy=config["phone_extension_policy"],
        ),
        normalize_emails=config["normalize_emails"],
        blocked_identifier_values=frozenset(
            str(v).strip().lower() for v in config["blocked_identifier_values"]
        ),
        invalid_identifier_policy=InvalidIdentifierPolicy(config["invalid_identifier_policy"]),
        invalid_attribute_policy=InvalidAttributePolicy(config["invalid_attribute_policy"]),
        empty_string_policy=config["empty_string_policy"],
        batch_size_rows=int(config["batch_size_rows"]),
        max_request_bytes=int(config["max_request_bytes"]),
        max_concurrent_requests=int(config["max_concurrent_requests"]),
        # JSON config files are read with Decimal for non-integers.
        request_timeout=float(config["request_timeout"]),
        max_retries=int(config["max_retries"]),
        retry_budget_seconds=float(config["retry_budget_seconds"]),
        backoff_base_seconds=float(config["backoff_base_seconds"]),
        backoff_max_seconds=float(config["backoff_max_seconds"]),
        max_dead_letters=_optional(config.get("max_dead_letters"), int),
        max_dead_letter_percent=_optional(config.get("max_dead_letter_percent"), float),
        dry_run=config["dry_run"],
        preflight=config["preflight"],
        # No schema default: the file name carries the run's UTC start.
        dry_run_path=Path(config.get("dry_run_path") or f"output/dry-run/insider-{stamp}.jsonl"),
        dead_letter_path=Path(
            config.get("dead_letter_path") or f"output/dead-letters/insider-{stamp}.jsonl"
        ),
    )


def _optional(value: object, kind: type) -> Any:
    return None if value is None else kind(value)
