"""tap-sfmc-de: config schema, validation and discovery."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Tap
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import CapabilitiesEnum, PluginCapabilities, TapCapabilities
from singer_sdk.plugin_base import JSONSchemaValidator
from typing_extensions import override

from tap_sfmc_de.auth import TokenManager
from tap_sfmc_de.client import HttpClient
from tap_sfmc_de.config_schema import CONFIG_SCHEMA, FetchMode
from tap_sfmc_de.errors import SfmcApiError, SfmcConfigError
from tap_sfmc_de.garbage_collection import collect_less_often
from tap_sfmc_de.preflight_cli import preflight_option, run_preflight_cli
from tap_sfmc_de.schema import DEField, stream_name_for_key
from tap_sfmc_de.settings import Settings, describe_config_error, secret_settings
from tap_sfmc_de.singer_writer import SingerWriter
from tap_sfmc_de.soap import retrieve_fields
from tap_sfmc_de.status_policy import scope_missing
from tap_sfmc_de.streams import DataExtensionStream
from tap_sfmc_de.text_numbers import numbers_from_text

if TYPE_CHECKING:
    import click

__all__ = ["CONFIG_SCHEMA", "TapSfmcDe"]


class TapSfmcDe(Tap):
    """Reads the rows of SFMC Data Extensions."""

    name = "tap-sfmc-de"
    dynamic_catalog = True
    config_jsonschema = CONFIG_SCHEMA
    message_writer_class = SingerWriter
    capabilities: ClassVar[list[CapabilitiesEnum]] = [
        TapCapabilities.CATALOG,
        TapCapabilities.DISCOVER,
        TapCapabilities.STATE,
        TapCapabilities.ACTIVATE_VERSION,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    @classmethod
    @override
    def invoke(cls, **kwargs: Any) -> None:  # ty:ignore[invalid-method-override]
        """Run the tap; a known error is logged as its message, without a traceback.

        Args:
            kwargs: The SDK's CLI options.
        """
        collect_less_often()
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
        numbers_from_text(self._config, schema["properties"])
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
            if settings.fetch_mode == FetchMode.INCREMENTAL:
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
        raise scope_missing()


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
