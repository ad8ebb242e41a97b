"""The ``--preflight`` option of the tap's command line (the checks live in ``preflight``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from singer_sdk.exceptions import ConfigValidationError

from tap_sfmc_de.preflight import PreflightExit, config_failure, report
from tap_sfmc_de.settings import Settings
from tap_sfmc_de.text_numbers import numbers_from_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from singer_sdk import Tap
    from singer_sdk.plugin_base import PluginBase


def preflight_option(callback: Callable[..., None]) -> click.Option:
    """The ``--preflight`` flag (processed after the eager ``--config``).

    Args:
        callback: Runs the checks and exits.

    Returns:
        The click option.
    """
    return click.Option(
        ["--preflight"],
        is_flag=True,
        expose_value=False,
        callback=callback,
        help="Check credentials, scopes, each DE key and what the server does with $filter and "
        "$orderBy; print a table (OK/WARN/FAIL with the fix) and exit 0 (all OK), 10 (warnings "
        "only) or 1 (a FAIL). Reads a few small pages, writes no state.",
    )


def run_preflight_cli(tap_class: type[Tap], config_input: Any) -> int:
    """Validate the config like a run would, run the checks, print the table.

    Args:
        tap_class: The tap class (validates the config and owns the logger).
        config_input: The SDK's parsed ``--config`` (files and/or ``ENV``).

    Returns:
        The exit code.
    """
    try:
        tap = tap_class(
            config=config_from(tap_class, config_input),
            parse_env_config=False,
            validate_config=True,
            setup_mapper=False,
        )
        settings = Settings.from_config(tap.config)
    except ConfigValidationError as exc:
        click.echo(config_failure(exc.errors or [str(exc)]), nl=False)
        return PreflightExit.FAIL
    text, code = report(settings, tap.logger)
    click.echo(text, nl=False)
    return code


def config_from(plugin_class: type[PluginBase], config_input: Any) -> dict[str, Any]:
    """The config of ``--config`` files and, for ``--config ENV``, the environment.

    Meltano's plugin commands pass settings only through the environment. The SDK parses
    integers, booleans, arrays and objects from it but leaves numbers as strings, which
    then fail validation (``'30' is not of type 'number'``): the plugin's own reading of
    numeric text (``numbers_from_text``, as in a run) converts them.

    Args:
        plugin_class: The plugin class (its schema and environment prefix).
        config_input: The SDK's parsed ``--config``.

    Returns:
        The merged config (the environment wins, as in the SDK).
    """
    config = dict(getattr(config_input, "config", None) or {})
    if not getattr(config_input, "parse_env", False):
        return config
    config.update(plugin_class._env_var_config)
    numbers_from_text(config, plugin_class.config_jsonschema.get("properties", {}))
    return config
