"""The ``--preflight`` option of the tap's command line (the checks live in ``preflight``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from singer_sdk.exceptions import ConfigValidationError

from tap_sfmc_de.preflight import PreflightExit, config_failure, report
from tap_sfmc_de.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from singer_sdk import Tap


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
            config=getattr(config_input, "config", {}),
            parse_env_config=bool(getattr(config_input, "parse_env", False)),
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
