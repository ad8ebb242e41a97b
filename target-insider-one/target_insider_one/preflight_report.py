"""``target-insider-one --preflight``: credentials, attributes and identifiers, before data.

One read-only request (``metadata/columns``, the start-up check of
:mod:`target_insider_one.preflight`) proves the partner name, API key and ``api_base_url``
and lists the attributes the account knows; every custom attribute the mapping sends is
checked against that list. The identifier settings are shown as a run would apply them.
Nothing is read from stdin and nothing is sent to the upsert endpoint.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING

from target_insider_one.client import InsiderAuthError, InsiderConfigError
from target_insider_one.preflight import read_columns

if TYPE_CHECKING:
    from collections.abc import Iterable

    from target_insider_one.client import InsiderClient
    from target_insider_one.settings import Settings

LINE_WIDTH = 100


class Grade(StrEnum):
    """A check's verdict."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


class PreflightExit(IntEnum):
    """Exit codes of ``--preflight`` (the same as the tap's; documented in the README)."""

    OK = 0  # every check passed
    FAIL = 1  # at least one FAIL: fix it before going live
    WARN_ONLY = 10  # no FAIL, some WARN: a run would work; read the warnings


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    subject: str
    grade: Grade
    finding: str
    fix: str = ""


def exit_code(checks: Iterable[Check]) -> PreflightExit:
    """The exit code for a report.

    Args:
        checks: The report's lines.

    Returns:
        FAIL if any line failed, WARN_ONLY if any warned, else OK.
    """
    grades = {c.grade for c in checks}
    if Grade.FAIL in grades:
        return PreflightExit.FAIL
    return PreflightExit.WARN_ONLY if Grade.WARN in grades else PreflightExit.OK


def render(title: str, checks: list[Check], width: int = LINE_WIDTH) -> str:
    """The report as a table that fits one screen (long findings wrap under themselves).

    Args:
        title: First line.
        checks: The lines.
        width: Line width.

    Returns:
        The text, ending in a newline.
    """
    subject_width = min(30, max([len("CHECK"), *(len(c.subject) for c in checks)]))
    indent = " " * (subject_width + 10)
    lines = [title, f"{'CHECK':<{subject_width}}  RESULT  DETAIL"]
    for check in checks:
        head = f"{check.subject[:subject_width]:<{subject_width}}  {check.grade:<6}  "
        lines += textwrap.wrap(
            check.finding, width, initial_indent=head, subsequent_indent=indent
        ) or [head]
        if check.fix:
            lines += textwrap.wrap(
                f"fix: {check.fix}", width, initial_indent=indent, subsequent_indent=indent + "  "
            )
    counts = {g: sum(c.grade == g for c in checks) for g in Grade}
    lines.append(
        f"{counts[Grade.OK]} OK, {counts[Grade.WARN]} WARN, {counts[Grade.FAIL]} FAIL "
        f"-> exit {int(exit_code(checks))}"
    )
    return "\n".join(lines) + "\n"


def run_preflight(settings: Settings, client: InsiderClient) -> list[Check]:
    """Check credentials, the mapped custom attributes and the identifier settings.

    Args:
        settings: Validated settings.
        client: The HTTP client (carries the credentials).

    Returns:
        The report's lines.
    """
    try:
        columns, unavailable = read_columns(settings, client)
    except (InsiderAuthError, InsiderConfigError) as exc:
        message, fix = _split_fix(exc.message)
        checks = [Check("credentials", Grade.FAIL, message, fix)]
        return checks + identifier_checks(settings)
    if columns is None:
        checks = [Check("credentials", Grade.WARN, unavailable)]
    else:
        checks = [
            Check(
                "credentials",
                Grade.OK,
                f"accepted by Insider at {settings.api_base_url} (read-only metadata/columns)",
            ),
            *attribute_checks(settings, columns),
        ]
    return checks + identifier_checks(settings)


def _split_fix(message: str) -> tuple[str, str]:
    """The start-up check's message is "what happened. Fix/Check what. Nothing was sent."."""
    message = message.removesuffix(" Nothing was sent.")
    for marker, lead in ((". Fix ", ""), (". Check ", "check ")):
        what, found, fix = message.partition(marker)
        if found:
            return what, lead + fix
    return message, ""


def attribute_checks(settings: Settings, columns: dict[str, str]) -> list[Check]:
    """Every custom attribute the mapping sends, against those the account defines.

    Args:
        settings: Target settings.
        columns: ``metadata/columns`` keys and types (custom attributes as ``c_<name>``).

    Returns:
        One OK line for the known ones, one FAIL line per unknown one.
    """
    sources = {t.name: f"field {f!r}" for f, t in settings.attributes if t.custom}
    sources |= {t.name: "fixed_value_mappings" for t, _ in settings.fixed_values if t.custom}
    known = sorted(n for n in sources if f"c_{n}" in columns)
    checks = []
    if known:
        listed = ", ".join(f"{n} ({columns[f'c_{n}'] or '?'})" for n in known)
        checks.append(Check("custom attributes", Grade.OK, f"{len(known)} known: {listed}"))
    defaults = sorted(t.name for _, t in settings.attributes if not t.custom)
    if defaults:
        checks.append(
            Check("default attributes", Grade.OK, f"{len(defaults)} mapped: {', '.join(defaults)}")
        )
    checks += [
        Check(
            f"custom.{name}",
            Grade.FAIL,
            f"custom attribute {name!r} (from {source}) is not defined in this Insider account "
            f"(metadata/columns has no 'c_{name}'): Insider would probably drop it silently",
            "create it in InOne > Audience > Attributes with a matching type, or fix "
            "attribute_mappings / fixed_value_mappings",
        )
        for name, source in sorted(sources.items())
        if f"c_{name}" not in columns
    ]
    return checks


def identifier_checks(settings: Settings) -> list[Check]:
    """The identifier settings, as a run applies them.

    Args:
        settings: Target settings.

    Returns:
        The identifiers line, and a warning for settings that change what is sent.
    """
    mapped = ", ".join(f"{m.label} <- {m.field}" for m in settings.identifiers)
    phone = settings.phone
    details = [f"invalid_identifier_policy {settings.invalid_identifier_policy}"]
    if any(m.type == "phone_number" for m in settings.identifiers):
        region = phone.default_region or "none (national numbers are invalid)"
        details.append(f"phone_default_region {region}")
    if any(m.type == "email" for m in settings.identifiers):
        details.append(f"normalize_emails {str(settings.normalize_emails).lower()}")
    checks = [Check("identifiers", Grade.OK, f"{mapped}; {', '.join(details)}")]
    if settings.dry_run:
        checks.append(
            Check(
                "dry_run",
                Grade.WARN,
                "dry_run is on: a run validates and writes request bodies, sends nothing and "
                "emits no STATE",
                "set dry_run false to go live",
            )
        )
    return checks


def report(settings: Settings, client: InsiderClient) -> tuple[str, PreflightExit]:
    """Run the checks and render them.

    Args:
        settings: Validated settings.
        client: The HTTP client.

    Returns:
        The table and the exit code.
    """
    checks = run_preflight(settings, client)
    title = (
        f"target-insider-one preflight: partner {settings.partner_name!r} at "
        f"{settings.api_base_url} (nothing sent)"
    )
    return render(title, checks), exit_code(checks)


def config_failure(errors: list[str]) -> str:
    """The report when the config itself is invalid.

    Args:
        errors: Validation messages (no secret values).

    Returns:
        The table.
    """
    checks = [Check("config", Grade.FAIL, error) for error in errors]
    return render("target-insider-one preflight: the config is invalid", checks)
