"""Validated, typed view of the tap's config.

Nothing builds a URL from a value that has not passed through here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from singer_sdk import typing as th
from singer_sdk.plugin_base import JSONSchemaValidator

from tap_sfmc_de.errors import SfmcConfigError
from tap_sfmc_de.retries import RETRY_LIMIT_SETTINGS, RetryPolicy
from tap_sfmc_de.values import from_bookmark, parse_offset

if TYPE_CHECKING:
    from jsonschema import ValidationError

SUBDOMAIN_RE = re.compile(r"^mc[a-z0-9-]{26}$")
MAX_PAGE_SIZE = 2500
# A run needs the count probe, capability probes and a data page with its boundary probe.
MIN_REQUESTS_PER_RUN = 5
DEFAULT_TOKEN_STORE = ".secrets/sfmc-refresh-token.json"  # noqa: S105 - a path


def is_loopback_host(host: str) -> bool:
    """Whether a host is loopback (the only place plain http is allowed).

    Args:
        host: Hostname or IP literal.

    Returns:
        True for localhost, 127.0.0.0/8 and ::1.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_base_url(url: str, what: str) -> str:
    """Check an API base URL and normalise it to end with exactly one slash.

    Args:
        url: The URL.
        what: Name used in the error message.

    Returns:
        The normalised URL.

    Raises:
        SfmcConfigError: If it is not https (or http on a loopback host).
    """
    parts = urlsplit(url or "")
    host = parts.hostname or ""
    if parts.username or parts.password:
        # Never echo the URL: its user-info part is a credential.
        raise SfmcConfigError(f"{what} must not contain a user name or password")
    if parts.query or parts.fragment or not host:
        raise SfmcConfigError(f"{what} must be a plain base URL like https://host/ (got {url!r})")
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(host)):
        raise SfmcConfigError(
            f"{what} must use https; plain http is only allowed for loopback hosts "
            f"(127.0.0.0/8, localhost, ::1); got {url!r}"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/"


JSON_TYPE_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


def secret_settings(schema: Mapping[str, Any]) -> frozenset[str]:
    """Names of the settings the config schema marks secret.

    Args:
        schema: The config JSON schema.

    Returns:
        Property names with ``secret`` or ``writeOnly``.
    """
    properties = schema.get("properties") or {}
    return frozenset(
        name for name, prop in properties.items() if prop.get("secret") or prop.get("writeOnly")
    )


def describe_config_error(error: ValidationError, secrets: frozenset[str]) -> str:
    """Word a JSON-schema error about the config without echoing a secret value.

    jsonschema's own message starts with the offending instance (``12345 is not of type
    'string'``), which for a secret setting is the secret itself, and for an error at the
    top level is the whole config.

    Args:
        error: One validation error.
        secrets: Names of secret settings.

    Returns:
        A message naming the setting and what it must be.
    """
    path = list(error.absolute_path)
    where = f" in config[{']['.join(repr(p) for p in path)}]" if path else ""
    if path and path[0] not in secrets:
        return f"{error.message}{where}"
    if error.validator == "required":
        return str(error.message)  # "'x' is a required property": names, no values
    got = JSON_TYPE_NAMES.get(type(error.instance), "value")
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"Setting '{path[0]}' must be of type {expected}, got {got} (value not shown)"
    name = f"Setting '{path[0]}'" if path else "The config"
    return f"{name} fails the schema's '{error.validator}' rule (value not shown){where}"


def schema_checked(config: Mapping[str, Any], properties: list[th.Property]) -> dict[str, Any]:
    """The values of some settings, with the schema's defaults and bounds applied.

    The tap's config was validated by the SDK already; this keeps other callers (the auth
    CLI, tests) on the same defaults without restating them.

    Args:
        config: The config.
        properties: Schema properties of the settings to read.

    Returns:
        Every listed setting's value (its default when absent or null).

    Raises:
        SfmcConfigError: If a value breaks the schema (named, secrets hidden).
    """
    schema = th.PropertiesList(*properties).to_dict()
    values = {k: config[k] for k in schema["properties"] if config.get(k) is not None}
    for error in JSONSchemaValidator(schema).iter_errors(values):  # also fills defaults
        raise SfmcConfigError(describe_config_error(error, secret_settings(schema)))
    # The SDK reads config files with parse_float=Decimal; the typed settings are floats.
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in values.items()}


def _require(config: Mapping[str, Any], name: str) -> Any:
    value = config.get(name)
    if value in (None, "", []):
        raise SfmcConfigError(f"Setting '{name}' is required.")
    return value


def _choice(config: Mapping[str, Any], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = config.get(name) or default
    if value not in allowed:
        raise SfmcConfigError(
            f"Setting '{name}' must be one of {', '.join(allowed)}; got {value!r}"
        )
    return str(value)


def _int_in(config: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = config.get(name, default)
    value = default if value is None else value
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise SfmcConfigError(f"Setting '{name}' must be an integer; got {value!r}") from exc
    if not low <= number <= high:
        raise SfmcConfigError(f"Setting '{name}' must be between {low} and {high}; got {number}")
    return number


def _float_in(config: Mapping[str, Any], name: str, default: float, low: float) -> float:
    value = config.get(name, default)
    try:
        number = float(default if value is None else value)
    except (TypeError, ValueError) as exc:
        raise SfmcConfigError(f"Setting '{name}' must be a number; got {value!r}") from exc
    if number < low:
        raise SfmcConfigError(f"Setting '{name}' must be at least {low}; got {number}")
    return number


@dataclass(frozen=True)
class Settings:
    """Validated settings. Secrets are excluded from repr."""

    client_id: str
    client_secret: str = field(repr=False)
    subdomain: str
    account_id: str | None
    auth_flow: str
    refresh_token: str | None = field(repr=False)
    token_store_path: str
    redirect_uri: str | None
    scopes: str | None
    data_extension_keys: tuple[str, ...]
    replication_key: str
    replication_keys_by_de: dict[str, str]
    fetch_mode: str
    filter_support: str
    start_date: dt.datetime | None
    page_size: int
    max_pages_per_run: int
    timezone: dt.timezone
    clock_margin_seconds: int
    lookback_seconds: int
    auth_base_url: str
    retry: RetryPolicy

    def replication_key_for(self, de_key: str) -> str:
        """The replication key field for one DE (per-key override, else the default).

        Args:
            de_key: DE external key.

        Returns:
            The field name.
        """
        return self.replication_keys_by_de.get(de_key, self.replication_key)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        """Validate a config mapping.

        Args:
            config: The tap config.

        Returns:
            Settings.

        Raises:
            SfmcConfigError: With a message naming the setting and the fix.
        """
        subdomain = str(_require(config, "subdomain")).strip()
        if not SUBDOMAIN_RE.match(subdomain):
            raise SfmcConfigError(
                "Setting 'subdomain' must be your tenant subdomain: 28 characters, starting "
                "with 'mc', lowercase letters, digits and hyphens (from Setup > Installed "
                f"Packages > API Integration, e.g. the part before .auth.marketingcloudapis.com); "
                f"got {len(subdomain)} characters."
            )
        account_id = config.get("account_id")
        if account_id not in (None, "") and not str(account_id).isdigit():
            raise SfmcConfigError(
                "Setting 'account_id' must be the numeric MID of a business unit."
            )
        keys = config.get("data_extension_keys") or []
        if isinstance(keys, str):
            keys = [k.strip() for k in keys.split(",")]
        keys = tuple(k for k in (str(k).strip() for k in keys) if k)
        if not keys:
            raise SfmcConfigError(
                "Setting 'data_extension_keys' needs at least one DE external key (CustomerKey)."
            )
        by_de = config.get("replication_keys_by_de") or {}
        if not isinstance(by_de, Mapping):
            raise SfmcConfigError(
                "Setting 'replication_keys_by_de' must map DE keys to field names."
            )
        try:
            tz = parse_offset(str(config.get("sfmc_timezone_offset") or "-06:00"))
        except ValueError as exc:
            raise SfmcConfigError(str(exc)) from None
        start = config.get("start_date")
        try:
            start_date = from_bookmark(str(start)) if start else None
        except ValueError:
            raise SfmcConfigError(
                "Setting 'start_date' must be an ISO-8601 date-time such as "
                f"2024-05-01T00:00:00Z (no offset means UTC); got {start!r}."
            ) from None
        auth_flow = _choice(
            config, "auth_flow", "client_credentials", ("client_credentials", "refresh_token")
        )
        auth_base = (
            config.get("auth_base_url") or f"https://{subdomain}.auth.marketingcloudapis.com/"
        )
        return cls(
            client_id=str(_require(config, "client_id")),
            client_secret=str(_require(config, "client_secret")),
            subdomain=subdomain,
            account_id=str(account_id) if account_id not in (None, "") else None,
            auth_flow=auth_flow,
            refresh_token=config.get("refresh_token") or None,
            token_store_path=str(config.get("token_store_path") or DEFAULT_TOKEN_STORE),
            redirect_uri=config.get("redirect_uri") or None,
            scopes=(str(config["scopes"]).strip() or None) if config.get("scopes") else None,
            data_extension_keys=keys,
            replication_key=str(config.get("replication_key") or "ModifiedDate"),
            replication_keys_by_de={str(k): str(v) for k, v in by_de.items()},
            fetch_mode=_choice(config, "fetch_mode", "incremental", ("incremental", "full")),
            filter_support=_choice(config, "filter_support", "auto", ("auto", "server", "client")),
            start_date=start_date,
            page_size=_int_in(config, "page_size", MAX_PAGE_SIZE, 1, MAX_PAGE_SIZE),
            max_pages_per_run=_int_in(
                config, "max_pages_per_run", 50, MIN_REQUESTS_PER_RUN, 1_000_000
            ),
            timezone=tz,
            clock_margin_seconds=_int_in(config, "clock_margin_seconds", 1, 0, 86_400),
            lookback_seconds=_int_in(config, "lookback_seconds", 300, 0, 86_400),
            auth_base_url=validate_base_url(str(auth_base), "auth_base_url"),
            retry=RetryPolicy(
                max_retries=_int_in(config, "max_retries", 5, 0, 100),
                backoff_base_seconds=_float_in(config, "backoff_base_seconds", 2.0, 0.0),
                backoff_max_seconds=_float_in(config, "backoff_max_seconds", 60.0, 0.0),
                request_timeout=_float_in(config, "request_timeout", 300.0, 0.001),
                **schema_checked(config, RETRY_LIMIT_SETTINGS),
            ),
        )
