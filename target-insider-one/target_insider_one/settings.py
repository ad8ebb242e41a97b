"""Typed, validated view of the target's configuration."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from singer_sdk.exceptions import ConfigValidationError

from target_insider_one.phone import EXTENSION_POLICIES, PHONE_VALIDATION_MODES, PhoneOptions
from target_insider_one.values import EMPTY_STRING_POLICIES

DEFAULT_API_BASE_URL = "https://unification.useinsider.com"
UPSERT_PATH = "/api/user/v1/upsert"
MAX_USERS_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 5_000_000
MAX_CONCURRENT_REQUESTS = 16
# Retrying: sized for a real 429 storm or a short outage (the schema holds these facts).
DEFAULT_MAX_RETRIES = 20
MAX_RETRIES_LIMIT = 100
DEFAULT_RETRY_BUDGET_SECONDS = 300
MAX_RETRY_BUDGET_SECONDS = 3600

IDENTIFIER_TYPES = ("email", "phone_number", "uuid", "custom")
INVALID_IDENTIFIER_POLICIES = ("skip_identifier", "skip_record")
INVALID_ATTRIBUTE_POLICIES = ("skip_attribute", "skip_record")
DEFAULT_BLOCKED_IDENTIFIER_VALUES = ("undefined", "null", "none", "nil", "anonymous", "n/a")

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
    skip_hook: bool = False
    fast_fail: bool = False
    not_append: bool = True
    phone: PhoneOptions = field(default_factory=PhoneOptions)
    normalize_emails: bool = True
    blocked_identifier_values: frozenset[str] = frozenset(DEFAULT_BLOCKED_IDENTIFIER_VALUES)
    invalid_identifier_policy: str = "skip_identifier"
    invalid_attribute_policy: str = "skip_attribute"
    empty_string_policy: str = "omit"
    batch_size: int = MAX_USERS_PER_REQUEST
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_concurrent_requests: int = 4
    request_timeout: float = 60.0
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_budget_seconds: float = DEFAULT_RETRY_BUDGET_SECONDS
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    max_dead_letters: int | None = None
    max_dead_letter_percent: float | None = None
    dry_run: bool = False
    preflight: bool = True
    dry_run_path: Path = Path("output/dry-run/insider.jsonl")
    dead_letter_path: Path = Path("output/dead-letters/insider.jsonl")

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
        if not isinstance(item, Mapping):
            errors.append(f"{where} must be an object with 'type' and 'field'")
            continue
        kind = str(item.get("type") or "").strip()
        source = str(item.get("field") or "").strip()
        name = item.get("name")
        name = str(name).strip() if name is not None else None
        if kind not in IDENTIFIER_TYPES:
            errors.append(
                f"{where}.type {kind!r} is not one of {', '.join(IDENTIFIER_TYPES)} "
                "(for a custom identifier use type 'custom' and set 'name')"
            )
            continue
        if not source:
            errors.append(f"{where}.field (the source field) is required")
            continue
        if kind == "custom":
            if not name or not _NAME_RE.fullmatch(name):
                errors.append(
                    f"{where}.name is required for type 'custom' and must be lowercase "
                    "letters, digits and underscores (the identifier's name in Insider IRM)"
                )
                continue
        elif name:
            errors.append(f"{where}.name is only used with type 'custom'")
            continue
        mapping = IdentifierMapping(
            type=kind, field=source, name=name if kind == "custom" else None
        )
        if mapping.label in seen:
            errors.append(f"{where}: identifier {mapping.label!r} is mapped twice")
            continue
        seen.add(mapping.label)
        result.append(mapping)
    return tuple(result)


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


def _choice(
    config: Mapping[str, Any], key: str, allowed: tuple[str, ...], errors: list[str]
) -> str:
    value = str(config.get(key) or allowed[0])
    if value not in allowed:
        errors.append(f"{key} must be one of {', '.join(allowed)} (got {value!r})")
    return value


def _bounded(
    config: Mapping[str, Any],
    key: str,
    *,
    default: float,
    low: float,
    high: float,
    errors: list[str],
) -> float:
    value = config.get(key)
    if value is None:
        return default
    # JSON config files are read with Decimal for non-integers.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        errors.append(f"{key} must be a number between {low:g} and {high:g} (got {value!r})")
        return default
    number = float(value)
    if not low <= number <= high:
        errors.append(f"{key} must be a number between {low:g} and {high:g} (got {number:g})")
        return default
    return number


def _optional(config: Mapping[str, Any], key: str, kind: type) -> Any:
    value = config.get(key)
    return None if value is None else kind(value)


def parse_settings(config: Mapping[str, Any]) -> Settings:
    """Validate the configuration beyond what JSON schema can express.

    Args:
        config: The target's config (JSON-schema validated, defaults applied).

    Returns:
        The settings.

    Raises:
        ConfigValidationError: Listing every problem found.
    """
    errors: list[str] = []
    partner = str(config.get("partner_name") or "").strip().lower()
    if not partner:
        errors.append("partner_name is required (your Insider One account/partner name)")
    api_key = str(config.get("api_key") or "")
    if not api_key.strip():
        errors.append("api_key is required (an Insider 'Unified Customer Database' API key)")
    base_url = _check_base_url(str(config.get("api_base_url") or DEFAULT_API_BASE_URL), errors)
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
    region = config.get("phone_default_region")
    region = str(region).strip().upper() if region else None
    if region and region not in phonenumbers.SUPPORTED_REGIONS:
        # An unknown region would silently make every national number invalid.
        hint = " (the United Kingdom is GB)" if region == "UK" else ""
        errors.append(
            f"phone_default_region must be an ISO 3166-1 alpha-2 region code such as GB, "
            f"US or DE (got {region!r}){hint}"
        )
    phone = PhoneOptions(
        normalize=bool(config.get("normalize_phone_numbers", True)),
        default_region=region,
        validation=_choice(config, "phone_validation", PHONE_VALIDATION_MODES, errors),
        rewrite_00_prefix=bool(config.get("phone_rewrite_00_prefix", True)),
        extension_policy=_choice(config, "phone_extension_policy", EXTENSION_POLICIES, errors),
    )
    blocked = config.get("blocked_identifier_values")
    if blocked is None:
        blocked = DEFAULT_BLOCKED_IDENTIFIER_VALUES
    batch_size = config.get("batch_size_rows") or MAX_USERS_PER_REQUEST
    if not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_USERS_PER_REQUEST:
        errors.append(f"batch_size_rows must be between 1 and {MAX_USERS_PER_REQUEST}")
        batch_size = MAX_USERS_PER_REQUEST
    max_bytes = int(
        _bounded(
            config,
            "max_request_bytes",
            default=MAX_REQUEST_BYTES,
            low=1_000,
            high=MAX_REQUEST_BYTES,
            errors=errors,
        )
    )
    concurrency = int(
        _bounded(
            config,
            "max_concurrent_requests",
            default=4,
            low=1,
            high=MAX_CONCURRENT_REQUESTS,
            errors=errors,
        )
    )
    stamp = _run_stamp()
    dead_letter_path = (
        config.get("dead_letter_path") or f"output/dead-letters/insider-{stamp}.jsonl"
    )
    dry_run_path = config.get("dry_run_path") or f"output/dry-run/insider-{stamp}.jsonl"
    settings = Settings(
        partner_name=partner,
        api_key=api_key,
        api_base_url=base_url,
        identifiers=identifiers,
        attributes=attributes,
        fixed_values=fixed,
        skip_hook=bool(config.get("skip_hook", False)),
        fast_fail=bool(config.get("fast_fail", False)),
        not_append=bool(config.get("not_append", True)),
        phone=phone,
        normalize_emails=bool(config.get("normalize_emails", True)),
        blocked_identifier_values=frozenset(str(v).strip().lower() for v in blocked),
        invalid_identifier_policy=_choice(
            config, "invalid_identifier_policy", INVALID_IDENTIFIER_POLICIES, errors
        ),
        invalid_attribute_policy=_choice(
            config, "invalid_attribute_policy", INVALID_ATTRIBUTE_POLICIES, errors
        ),
        empty_string_policy=_choice(config, "empty_string_policy", EMPTY_STRING_POLICIES, errors),
        batch_size=batch_size,
        max_request_bytes=max_bytes,
        max_concurrent_requests=concurrency,
        request_timeout=_bounded(
            config, "request_timeout", default=60.0, low=0.1, high=3600, errors=errors
        ),
        max_retries=int(
            _bounded(
                config,
                "max_retries",
                default=DEFAULT_MAX_RETRIES,
                low=0,
                high=MAX_RETRIES_LIMIT,
                errors=errors,
            )
        ),
        retry_budget_seconds=_bounded(
            config,
            "retry_budget_seconds",
            default=DEFAULT_RETRY_BUDGET_SECONDS,
            low=0,
            high=MAX_RETRY_BUDGET_SECONDS,
            errors=errors,
        ),
        backoff_base_seconds=_bounded(
            config, "backoff_base_seconds", default=1.0, low=0, high=600, errors=errors
        ),
        backoff_max_seconds=_bounded(
            config, "backoff_max_seconds", default=60.0, low=0, high=3600, errors=errors
        ),
        # Bounds are checked by the config schema; None turns the alert off.
        max_dead_letters=_optional(config, "max_dead_letters", int),
        max_dead_letter_percent=_optional(config, "max_dead_letter_percent", float),
        dry_run=bool(config.get("dry_run", False)),
        preflight=bool(config.get("preflight", True)),
        dry_run_path=Path(str(dry_run_path)),
        dead_letter_path=Path(str(dead_letter_path)),
    )
    if errors:
        raise ConfigValidationError(
            "Invalid target-insider-one configuration:\n  - " + "\n  - ".join(errors),
            errors=errors,
        )
    return settings
