"""``target-insider-one --preview N``: what the first N records would become, sending nothing.

The records (from any tap, on stdin) go through this very target in dry-run mode, so the
preview shows exactly what a run would do: stream maps, schema validation, the mapping,
value conversion, phone and email rules and the request bodies. Per record it prints the
source values and either the Insider user that would be sent or the reason the record
would be dead-lettered. String values are masked unless ``--show-pii`` is given.

Nothing reaches the upsert endpoint (the run is a dry run, checked before any input is
read), no STATE is emitted, and the dry-run and dead-letter files live in a temporary
directory that is removed afterwards. Reading stops after N records; a tap writing into
the pipe then stops too.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from target_insider_one.client import InsiderError

if TYPE_CHECKING:
    from singer_sdk import Target

MASK = "•••"
SHORT = 4  # strings up to this long are masked entirely


def mask(value: Any) -> Any:
    """Hide a value's text but keep its shape: type, first (and last) character, domain dot.

    Numbers, booleans and null are shown (counts and flags are not personal data); every
    string is masked, dates included (a birthday is personal).

    Args:
        value: A JSON value.

    Returns:
        The masked value (containers masked element by element, keys kept).
    """
    if isinstance(value, dict):
        return {key: mask(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask(item) for item in value]
    if not isinstance(value, str):
        return value
    if "@" in value:
        local, _, domain = value.rpartition("@")
        tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
        return f"{mask(local)}@{MASK}" + (f".{tld}" if 0 < len(tld) <= SHORT else "")
    if len(value) <= SHORT:
        return MASK
    return f"{value[0]}{MASK}{value[-1]}"


@dataclass
class Outcome:
    """What became of one record."""

    stream: str
    record: dict[str, Any]
    user: dict[str, Any] | None = None
    reason: str = ""
    message: str = ""


def read_first_records(lines: IO[str], limit: int) -> tuple[list[str], int]:
    """The input up to the ``limit``-th RECORD: SCHEMA and RECORD lines, STATE dropped.

    Args:
        lines: Singer messages.
        limit: Records wanted.

    Returns:
        The lines to feed the target and the number of records among them.
    """
    kept: list[str] = []
    records = 0
    for line in lines:
        if records >= limit:
            break
        try:
            kind = json.loads(line).get("type")
        except (ValueError, AttributeError):
            kept.append(line)  # the target reports a malformed line by its number
            continue
        if kind == "RECORD":
            records += 1
        if kind != "STATE":  # a dry run emits no STATE; nothing would consume it
            kept.append(line)
    return kept, records


def run_preview(
    target_class: type[Target],
    config: dict[str, Any],
    limit: int,
    *,
    show_pii: bool,
    lines: IO[str],
) -> tuple[str, int]:
    """Feed the first ``limit`` records through the target in dry-run mode.

    Args:
        target_class: The target class.
        config: The target's config (the preview's dry-run settings override it).
        limit: Records to preview.
        show_pii: Show values unmasked.
        lines: Singer input.

    Returns:
        The text to print and the exit code (0 previewed, 1 the target refused to run).
    """
    kept, count = read_first_records(lines, limit)
    with tempfile.TemporaryDirectory(prefix="insider-preview-") as tmp:
        dry_run_path, dead_letter_path = Path(tmp, "dry-run.jsonl"), Path(tmp, "dead.jsonl")
        overrides = {
            "dry_run": True,
            "dry_run_path": str(dry_run_path),
            "dead_letter_path": str(dead_letter_path),
        }
        target = target_class(
            config={**config, **overrides}, parse_env_config=False, validate_config=True
        )
        try:
            target.listen(io.StringIO("".join(kept)))
        except InsiderError as exc:
            return f"preview stopped: {exc.message}\n", 1
        outcomes = correlate(kept, _jsonl(dry_run_path), _jsonl(dead_letter_path))
    return render(outcomes, count, show_pii=show_pii), 0


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def correlate(
    lines: list[str], bodies: list[dict[str, Any]], dead_letters: list[dict[str, Any]]
) -> list[Outcome]:
    """Pair each input record with its user in the request bodies, or its dead letter.

    Records are mapped in input order, so the users of the bodies follow the records that
    were not dead-lettered. A dead letter carries its record; identical records share one
    (the dead-letter file keeps each record and reason once).

    Args:
        lines: The input fed to the target.
        bodies: Dry-run request bodies, in order.
        dead_letters: Dead letters.

    Returns:
        One outcome per record.
    """
    users = iter([user for body in bodies for user in body.get("users", [])])
    outcomes = []
    for line in lines:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("type") != "RECORD":
            continue
        stream, record = str(message.get("stream")), message.get("record") or {}
        letter = next(
            (d for d in dead_letters if d.get("stream") == stream and d.get("record") == record),
            None,
        )
        if letter is not None:
            reason, text = str(letter.get("reason")), str(letter.get("message"))
            outcomes.append(Outcome(stream, record, reason=reason, message=text))
        else:
            outcomes.append(Outcome(stream, record, user=next(users, None)))
    return outcomes


def render(outcomes: list[Outcome], count: int, *, show_pii: bool) -> str:
    """Per record: the source values, then the user that would be sent or the reason.

    Args:
        outcomes: One per record.
        count: Records read.
        show_pii: Show values unmasked.

    Returns:
        The text.
    """
    shown = (lambda v: v) if show_pii else mask
    streams = ", ".join(sorted({o.stream for o in outcomes})) or "none"
    privacy = "values shown" if show_pii else "values masked (--show-pii shows them)"
    sent = sum(o.user is not None for o in outcomes)
    title = (
        f"target-insider-one preview: {count} record(s) of {streams}; dry run: nothing sent, "
        f"no STATE; {privacy}"
    )
    lines = [title]
    for number, outcome in enumerate(outcomes, start=1):
        source = ", ".join(f"{k}={_compact(shown(v))}" for k, v in outcome.record.items())
        lines.append(f"#{number:<3} source  {source}")
        if outcome.user is not None:
            lines.append(f"     send    {_compact(shown(outcome.user))}")
        else:
            why = outcome.message if show_pii else _mask_values(outcome.message, outcome.record)
            lines.append(f"     dead    {outcome.reason}: {why}")
    lines.append(f"{sent} would be sent, {len(outcomes) - sent} dead-lettered")
    return "\n".join(lines) + "\n"


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _mask_values(text: str, record: dict[str, Any]) -> str:
    """A dead-letter message may quote a value: mask every string value of the record."""
    for value in sorted((v for v in record.values() if isinstance(v, str)), key=len, reverse=True):
        if len(value) > 1:
            text = text.replace(value, str(mask(value)))
    return text
