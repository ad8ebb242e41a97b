"""Validated, typed view of the tap's config.

Nothing builds a URL from a value that has not passed through here.
"""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from singer_sdk.plugin_base import JSONSchemaValidator

from tap_sfmc_de.config_schema import (
    CONFIG_SCHEMA,
    DEFAULT_TOKEN_STORE,
    MAX_PAGE_SIZE,
    MIN_REQUESTS_PER_RUN,
    AuthFlow,
    FetchMode,
    FilterSupport,
)
from tap_sfmc_de.errors import SfmcConfigError
from tap_sfmc_de.retries import RetryPolicy
from tap_sfmc_de.values import from_bookmark, parse_offset

if TYPE_CHECKING:
    from jsonschema import ValidationError

__all__ = ["DEFAULT_TOKEN_STORE", "MAX_PAGE_SIZE", "MIN_REQUESTS_PER_RUN", "Settings"]

SUBDOMAIN_RE = re.compile(r"^mc[a-z0-9-]{26}$")
ENV_PREFIX = "TAP_SFMC_DE_"  # Meltano's (and the SDK's --config=ENV) variable prefix
# Our settings only: the SDK adds its built-in settings to the tap's schema in place.
_OWN_SCHEMA = copy.deepcopy(CONFIG_SCHEMA)


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
        return f"{error.message}{where}{bounds_hint(error)}"
    if error.validator == "required":  # "'x' is a required property": names, no values
        return f"{error.message}: {where_to_set(str(error.message))}"
    got = JSON_TYPE_NAMES.get(type(error.instance), "value")
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"Setting '{path[0]}' must be of type {expected}, got {got} (value not shown)"
    name = f"Setting '{path[0]}'" if path else "The config"
    return f"{name} fails the schema's '{error.validator}' rule (value not shown){where}"


def where_to_set(message: str) -> str:
    """Where a missing setting goes, named in a required-property message.

    Args:
        message: jsonschema's "'name' is a required property".

    Returns:
        The environment variable (Meltano and ``--config=ENV`` both read it) and the
        meltano.yml alternative.
    """
    name = message.split("'")[1] if message.count("'") >= 2 else "<setting>"  # noqa: PLR2004
    return f"set {ENV_PREFIX}{name.upper()} (environment or .env), or {name} in meltano.yml"


def bounds_hint(error: ValidationError) -> str:
    """The whole allowed range, for an error about one of its ends.

    Args:
        error: A ``minimum`` or ``maximum`` validation error.

    Returns:
        `` (must be between LOW and HIGH)`` when the schema states both ends, else "".
    """
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    low, high = schema.get("minimum"), schema.get("maximum")
    if error.validator not in {"minimum", "maximum"} or low is None or high is None:
        return ""
    return f" (must be between {low} and {high})"


def schema_checked(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with the schema's defaults filled in, checked against its bounds.

    A null or empty value counts as unset (it gets the default). In the tap this repeats
    what the SDK already did to the same config: singer-sdk 0.54.9 validates the config in
    ``PluginBase.__init__`` (``TapSfmcDe._validate_config``) with a validator that fills
    the schema's defaults as it goes. Doing it here too keeps other callers (the auth CLI,
    tests) on the same defaults and bounds: the schema's.

    Args:
        config: The raw or SDK-validated config.

    Returns:
        Every setting of the schema that has a value or a default.

    Raises:
        SfmcConfigError: For the first value that breaks the schema (named, secrets hidden).
    """
    values = {k: v for k, v in config.items() if k in _OWN_SCHEMA["properties"]}
    values = {k: v for k, v in values.items() if v is not None and v != ""}
    keys = values.get("data_extension_keys")
    if isinstance(keys, str):  # "A, B" from a hand-written config or an env var
        values["data_extension_keys"] = [k.strip() for k in keys.split(",")]
    for error in JSONSchemaValidator(_OWN_SCHEMA).iter_errors(values):  # also fills defaults
        message = describe_config_error(error, secret_settings(_OWN_SCHEMA))
        raise SfmcConfigError(message)
    # The SDK reads config files with parse_float=Decimal; the typed settings are floats.
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in values.items()}


def _required(config: Mapping[str, Any], name: str) -> Any:
    value = config.get(name)
    if value in (None, "", []):
        raise SfmcConfigError(f"Setting '{name}' is required.")
    return value


@dataclass(frozen=True)
class Settings:
    """Validated settings. Secrets are excluded from repr.

    Each field is the setting of the same name (defaults and bounds: the config schema),
    except ``timezone`` (``sfmc_timezone_offset``) and ``retry`` (the retry settings).
    """

    client_id: str
    client_secret: str = field(repr=False)
    subdomain: str
    account_id: str | None
    auth_flow: AuthFlow
    refresh_token: str | None = field(repr=False)
    token_store_path: str
    redirect_uri: str | None
    scopes: str | None
    data_extension_keys: tuple[str, ...]
    replication_key: str
    replication_keys_by_de: dict[str, str]
    fetch_mode: FetchMode
    filter_support: FilterSupport
    start_date: dt.datetime | None
    page_size: int
    max_pages_per_run: int
    page_concurrency: int
    timezone: dt.timezone
    clock_margin_seconds: int
    lookback_seconds: int
    auth_base_url: str
    retry: RetryPolicy
    emit_activate_version_messages: bool

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
        """Build the settings from the config; defaults and bounds are the schema's.

        Args:
            config: The tap config (raw, or as the SDK validated it).

        Returns:
            Settings.

        Raises:
            SfmcConfigError: With a message naming the setting and the fix.
        """
        values = schema_checked(config)
        subdomain = _subdomain(values)
        return cls(
            client_id=str(_required(values, "client_id")),
            client_secret=str(_required(values, "client_secret")),
            subdomain=subdomain,
            account_id=_account_id(values.get("account_id")),
            auth_flow=AuthFlow(values["auth_flow"]),
            refresh_token=values.get("refresh_token"),
            token_store_path=str(values["token_store_path"]),
            redirect_uri=values.get("redirect_uri"),
            scopes=str(values.get("scopes") or "").strip() or None,
            data_extension_keys=_de_keys(values),
            replication_key=str(values["replication_key"]),
            replication_keys_by_de=_keys_by_de(values.get("replication_keys_by_de") or {}),
            fetch_mode=FetchMode(values["fetch_mode"]),
            filter_support=FilterSupport(values["filter_support"]),
            start_date=_start_date(values.get("start_date")),
            page_size=values["page_size"],
            max_pages_per_run=values["max_pages_per_run"],
            page_concurrency=values["page_concurrency"],
            timezone=_timezone(values["sfmc_timezone_offset"]),
            clock_margin_seconds=values["clock_margin_seconds"],
            lookback_seconds=values["lookback_seconds"],
            auth_base_url=validate_base_url(
                values.get("auth_base_url") or f"https://{subdomain}.auth.marketingcloudapis.com/",
                "auth_base_url",
            ),
            retry=RetryPolicy.from_config(values),
            emit_activate_version_messages=bool(values["emit_activate_version_messages"]),
        )


def _subdomain(values: Mapping[str, Any]) -> str:
    subdomain = str(_required(values, "subdomain")).strip()
    if not SUBDOMAIN_RE.match(subdomain):
        raise SfmcConfigError(
            "Setting 'subdomain' must be your tenant subdomain: 28 characters, starting "
            "with 'mc', lowercase letters, digits and hyphens (from Setup > Installed "
            f"Packages > API Integration, e.g. the part before .auth.marketingcloudapis.com); "
            f"got {len(subdomain)} characters."
        )
    return subdomain


def _account_id(account_id: object) -> str | None:
    if account_id is None:
        return None
    if not str(account_id).isdigit():
        raise SfmcConfigError("Setting 'account_id' must be the numeric MID of a business unit.")
    return str(account_id)


def _de_keys(values: Mapping[str, Any]) -> tuple[str, ...]:
    keys = tuple(k for k in (str(k).strip() for k in values.get("data_extension_keys", [])) if k)
    if not keys:
        raise SfmcConfigError(
            "Setting 'data_extension_keys' needs at least one DE external key (CustomerKey)."
        )
    return keys


def _keys_by_de(by_de: object) -> dict[str, str]:
    if not isinstance(by_de, Mapping):
        raise SfmcConfigError("Setting 'replication_keys_by_de' must map DE keys to field names.")
    return {str(k): str(v) for k, v in by_de.items()}


def _timezone(offset: str) -> dt.timezone:
    try:
        return parse_offset(str(offset))
    except ValueError as exc:
        raise SfmcConfigError(str(exc)) from None


def _start_date(start: object) -> dt.datetime | None:
    try:
        return from_bookmark(str(start)) if start else None
    except ValueError:
        raise SfmcConfigError(
            "Setting 'start_date' must be an ISO-8601 date-time such as "
            f"2024-05-01T00:00:00Z (no offset means UTC); got {start!r}."
        ) from None
