"""tap-sfmc-de: config schema, validation and discovery."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities, TapCapabilities
from singer_sdk.plugin_base import JSONSchemaValidator
from typing_extensions import override

from tap_sfmc_de.auth import TokenManager
from tap_sfmc_de.client import HttpClient
from tap_sfmc_de.errors import SfmcApiError, SfmcConfigError
from tap_sfmc_de.preflight_cli import preflight_option, run_preflight_cli
from tap_sfmc_de.retries import RETRY_LIMIT_SETTINGS
from tap_sfmc_de.rowset import SCOPE_HINT
from tap_sfmc_de.schema import DEField, stream_name_for_key
from tap_sfmc_de.settings import (
    DEFAULT_TOKEN_STORE,
    Settings,
    describe_config_error,
    secret_settings,
)
from tap_sfmc_de.soap import retrieve_fields
from tap_sfmc_de.streams import DataExtensionStream

if TYPE_CHECKING:
    import click

CHOICE = th.StringType


def _p(name: str, kind: th.JSONTypeHelper, description: str, **kwargs: object) -> th.Property:
    return th.Property(name, kind, description=description, **kwargs)  # type: ignore[arg-type]


CONFIG_SCHEMA = th.PropertiesList(
    _p("client_id", th.StringType, "API Integration client id.", required=True),
    _p(
        "client_secret", th.StringType, "API Integration client secret.", required=True, secret=True
    ),
    _p(
        "subdomain",
        th.StringType,
        "Tenant subdomain: 28 characters, starts with 'mc', lowercase letters, digits, hyphens.",
        required=True,
    ),
    _p("account_id", th.StringType, "MID of the business unit; default is the package's own BU."),
    _p(
        "auth_flow",
        CHOICE,
        "client_credentials (Server-to-Server package) or refresh_token (Web App package).",
        default="client_credentials",
        allowed_values=["client_credentials", "refresh_token"],
    ),
    _p(
        "refresh_token",
        th.StringType,
        "Initial refresh token (refresh_token flow); rotated tokens live in token_store_path.",
        secret=True,
    ),
    _p(
        "token_store_path",
        th.StringType,
        "File (mode 0600, fcntl-locked) that keeps the newest refresh token.",
        default=DEFAULT_TOKEN_STORE,
    ),
    _p("redirect_uri", th.StringType, "Web App redirect URI; used only by tap-sfmc-de-auth."),
    _p(
        "scopes",
        th.StringType,
        "Space-separated scopes to request (default: all). Must include data_extensions_read.",
    ),
    _p(
        "data_extension_keys",
        th.ArrayType(th.StringType),
        "DE external keys (CustomerKey, not the name); one stream per key, named de_<key>.",
        required=True,
    ),
    _p(
        "replication_key",
        th.StringType,
        "Date field that every writer sets on every insert and update.",
        default="ModifiedDate",
    ),
    _p(
        "replication_keys_by_de",
        th.ObjectType(additional_properties=th.StringType),
        'Per-DE-key override of replication_key, e.g. {"Orders": "UpdatedAt"}.',
    ),
    _p(
        "fetch_mode",
        CHOICE,
        "incremental (windows on replication_key) or full (every row on every pass).",
        default="incremental",
        allowed_values=["incremental", "full"],
    ),
    _p(
        "filter_support",
        CHOICE,
        "Is REST $filter honoured? auto probes once per run; server/client force it.",
        default="auto",
        allowed_values=["auto", "server", "client"],
    ),
    _p("start_date", th.DateTimeType, "Lower bound of the first window (no bookmark yet)."),
    _p("page_size", th.IntegerType, "Rows per rowset page (1-2500).", default=2500),
    _p(
        "max_pages_per_run",
        th.IntegerType,
        "Rowset requests per stream per run, of every kind (pages and probes; at least 5).",
        default=50,
    ),
    _p(
        "sfmc_timezone_offset",
        th.StringType,
        "Fixed UTC offset of SFMC date values (no DST).",
        default="-06:00",
    ),
    _p(
        "clock_margin_seconds",
        th.IntegerType,
        "Seconds subtracted from the server clock for a window's upper bound.",
        default=1,
    ),
    _p(
        "lookback_seconds",
        th.IntegerType,
        "Each run re-reads rows this far behind the bookmark, for writers that commit late "
        "(0-86400); rows already emitted are not emitted again.",
        default=300,
    ),
    _p(
        "auth_base_url",
        th.StringType,
        "Override of https://<subdomain>.auth.marketingcloudapis.com/ (http only on loopback).",
    ),
    _p("request_timeout", th.NumberType, "Seconds per HTTP request.", default=300),
    _p(
        "max_retries",
        th.IntegerType,
        "Retries of a transient failure (429, 5xx, timeouts, dropped connections).",
        default=5,
    ),
    _p(
        "backoff_base_seconds",
        th.NumberType,
        "First backoff delay; doubles per retry, with jitter.",
        default=2,
    ),
    _p(
        "backoff_max_seconds",
        th.NumberType,
        "Cap of one backoff delay (errorcode 50200 waits 4x longer).",
        default=60,
    ),
    *RETRY_LIMIT_SETTINGS,
).to_dict()


class TapSfmcDe(Tap):
    """Reads the rows of SFMC Data Extensions."""

    name = "tap-sfmc-de"
    dynamic_catalog = True
    config_jsonschema = CONFIG_SCHEMA
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.DISCOVER,
        TapCapabilities.STATE,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
    ]

    @classmethod
    @override
    def invoke(cls, **kwargs: Any) -> None:  # ty:ignore[invalid-method-override]
        """Run the tap; a known error is logged as its message, without a traceback.

        Args:
            kwargs: The SDK's CLI options.
        """
        with _message_not_traceback(cls):
            super().invoke(**kwargs)

    @classmethod
    @override
    def cb_discover(cls, ctx: click.Context, param: click.Option, value: bool) -> None:
        """Run discovery (``--discover``); known errors as in :meth:`invoke`.

        Args:
            ctx: Click context.
            param: Click option.
            value: Whether to run in discovery mode.
        """
        with _message_not_traceback(cls):
            super().cb_discover(ctx, param, value)

    @classmethod
    @override
    def get_singer_command(cls) -> click.Command:
        """The SDK's command plus ``--preflight`` (see :mod:`tap_sfmc_de.preflight`).

        Returns:
            The click command.
        """
        command = super().get_singer_command()
        command.params.append(preflight_option(cls.cb_preflight))
        return command

    @classmethod
    def cb_preflight(cls, ctx: click.Context, param: click.Option, value: bool) -> None:  # noqa: ARG003
        """Run the preflight checks (``--preflight``), print the table and exit with its code.

        Args:
            ctx: Click context.
            param: Click option.
            value: Whether ``--preflight`` was given.
        """
        if value:
            ctx.exit(run_preflight_cli(cls, ctx.params.get("config")))

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """The SDK's validation (defaults filled in), with messages that hide secret values.

        Args:
            raise_errors: Raise on errors (else log a warning).

        Returns:
            The error messages.

        Raises:
            ConfigValidationError: If raise_errors and the config is invalid.
        """
        schema = self.config_jsonschema
        self.append_builtin_config(schema)
        secrets = secret_settings(schema)
        validator = JSONSchemaValidator(schema)
        errors = [describe_config_error(e, secrets) for e in validator.iter_errors(self._config)]
        if errors and raise_errors:
            raise ConfigValidationError("Config validation failed", errors=errors, schema=schema)
        if errors:
            self.logger.warning("Config validation failed")
        return errors

    @override
    def discover_streams(self) -> list[DataExtensionStream]:
        """One stream per configured DE key, schema from SOAP DataExtensionField.

        Returns:
            The streams.

        Raises:
            SfmcConfigError: For unknown keys, name collisions or a missing replication key.
        """
        settings = Settings.from_config(self.config)
        http = HttpClient(settings.retry, logger=self.logger.getChild("http"))
        tokens = TokenManager(settings, http)
        check_scope(tokens.get().scope)
        streams: list[DataExtensionStream] = []
        names: dict[str, str] = {}
        for key in settings.data_extension_keys:
            name = stream_name_for_key(key)
            if name in names:
                raise SfmcConfigError(
                    f"DE keys '{names[name]}' and '{key}' both map to stream {name}."
                )
            names[name] = key
            fields = retrieve_fields(http, tokens, key)
            if not fields:
                raise SfmcConfigError(
                    f"No fields found for DE key '{key}': use the external key (CustomerKey), not "
                    "the DE name, and check the business unit (account_id) and that the package "
                    "has Data Extensions Read (SOAP returns no rows without it)."
                )
            if settings.fetch_mode == "incremental":
                check_replication_key(key, settings.replication_key_for(key), fields)
            streams.append(
                DataExtensionStream(
                    self, de_key=key, fields=fields, settings=settings, http=http, tokens=tokens
                )
            )
        return streams


@contextmanager
def _message_not_traceback(tap: type[Tap]) -> Iterator[None]:
    """Our errors already name the problem and the fix; a traceback would bury them."""
    try:
        yield
    except (SfmcApiError, SfmcConfigError) as exc:
        tap.logger.error("%s", exc)  # noqa: TRY400
        sys.exit(1)


def check_scope(granted: str) -> None:
    """Fail early when the token lists scopes but not ``data_extensions_read``.

    SOAP answers a missing scope with zero rows instead of an error, so without this
    check the user would see a misleading "no fields" message.

    Args:
        granted: The token response's space-separated ``scope`` (may be empty).

    Raises:
        SfmcApiError: Naming the scope and where to enable it.
    """
    if granted and "data_extensions_read" not in granted.split():
        raise SfmcApiError(f"The access token was issued without access to DE rows: {SCOPE_HINT}.")


def check_replication_key(de_key: str, rk: str, fields: list[DEField]) -> None:
    """Fail discovery unless the replication key exists and is a Date field.

    Args:
        de_key: DE external key.
        rk: Replication key name.
        fields: The DE's fields.

    Raises:
        SfmcConfigError: With the fix.
    """
    match = next((f for f in fields if f.name.lower() == rk.lower()), None)
    maintained = (
        "that every writer sets on every insert and update (DEs have no built-in modified "
        "date; a Now() default only fires on insert)"
    )
    others = "or use fetch_mode full"
    if match is None:
        raise SfmcConfigError(
            f"DE '{de_key}' has no field '{rk}' for incremental sync: add a Date field '{rk}' "
            f"{maintained}, choose another field with replication_keys_by_de, {others}."
        )
    if match.field_type.lower() != "date":
        raise SfmcConfigError(
            f"Field '{match.name}' of DE '{de_key}' is {match.field_type}, not Date: point "
            f"replication_key (or replication_keys_by_de) at a Date field {maintained}, {others}."
        )


if __name__ == "__main__":
    TapSfmcDe.cli()
