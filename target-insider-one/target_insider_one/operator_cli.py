"""``--preflight`` and ``--preview N`` on the target's command line (checks live elsewhere).

Both are click callbacks run after the eager ``--config`` (and ``--show-pii``) are parsed;
each prints its report and exits with its own code, before the target reads any input.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
from singer_sdk.exceptions import ConfigValidationError

from target_insider_one.preflight_report import PreflightExit, config_failure, report
from target_insider_one.preview import run_preview
from target_insider_one.text_numbers import numbers_from_text

if TYPE_CHECKING:
    from singer_sdk import Target
    from singer_sdk.plugin_base import PluginBase

SHOW_PII = "target_insider_one.show_pii"


def operator_options(target_class: type[Target]) -> list[click.Option]:
    """The options, bound to the target class.

    Args:
        target_class: The target class (validates the config).

    Returns:
        ``--preflight``, ``--preview`` and ``--show-pii``.
    """

    def preflight(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.exit(_preflight(target_class, ctx.params.get("config")))

    def preview(ctx: click.Context, _param: click.Parameter, value: int | None) -> None:
        if value is not None:
            ctx.exit(_preview(target_class, ctx, value))

    return [
        click.Option(
            ["--preflight"],
            is_flag=True,
            expose_value=False,
            callback=preflight,
            help="Check credentials (one read-only request), the mapped custom attributes and "
            "the identifier settings; print a table and exit 0 (all OK), 10 (warnings only) or "
            "1 (a FAIL). Reads no input, sends nothing.",
        ),
        click.Option(
            ["--show-pii"],
            is_flag=True,
            is_eager=True,  # read by --preview's callback
            expose_value=False,  # not a parameter of Target.invoke
            callback=lambda ctx, _param, value: ctx.meta.__setitem__(SHOW_PII, value),
            help="With --preview: show values unmasked.",
        ),
        click.Option(
            ["--preview"],
            type=click.IntRange(1, 1000),
            expose_value=False,
            callback=preview,
            help="Read the first N records from stdin, run them through the target as a dry "
            "run and print per record the source values and the Insider user that would be "
            "sent, or why it would be dead-lettered. Sends nothing, emits no STATE.",
        ),
    ]


def _target(target_class: type[Target], config_input: Any) -> Target | str:
    try:
        return target_class(
            config=config_from(target_class, config_input),
            parse_env_config=False,
            validate_config=True,
        )
    except ConfigValidationError as exc:
        return config_failure(exc.errors or [str(exc)])


def _preflight(target_class: type[Target], config_input: Any) -> int:
    target = _target(target_class, config_input)
    if isinstance(target, str):
        click.echo(target, nl=False)
        return PreflightExit.FAIL
    runtime = target.runtime  # type: ignore[attr-defined]
    text, code = report(runtime.settings, runtime.client)
    click.echo(text, nl=False)
    return code


def _preview(target_class: type[Target], ctx: click.Context, limit: int) -> int:
    try:
        text, code = run_preview(
            target_class,
            config_from(target_class, ctx.params.get("config")),
            limit,
            show_pii=bool(ctx.meta.get(SHOW_PII)),
            lines=sys.stdin,
        )
    except ConfigValidationError as exc:
        text, code = config_failure(exc.errors or [str(exc)]), PreflightExit.FAIL
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
