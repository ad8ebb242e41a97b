"""Configuration checked against what it refers to: each stream's SCHEMA, the known settings.

- Fields a schema does not declare never reach the target (the SDK drops them). When none
  of the identifier fields is in a stream's schema, no record of it could be sent: a
  configuration error, and the run stops before the stream's records are read.
- When some identifier fields are there, each missing one is a warning (every stream
  shares one mapping, so a data extension without, say, a phone column is legitimate), and
  so is each missing attribute field: that identifier or attribute is never sent.
- A config key that is no setting (``batch_size`` for ``batch_size_rows``) is a warning.

Messages name the closest valid name (``difflib``) and never echo config values (an unknown
key may hold a secret).
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from target_insider_one.settings import Settings

MAX_LISTED_FIELDS = 40


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name`` (a case-insensitive match first), if any is close.

    Args:
        name: What was configured.
        candidates: Valid names.

    Returns:
        The suggestion, or None.
    """
    candidates = list(candidates)
    for candidate in candidates:
        if candidate.lower() == name.lower():
            return candidate
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _hint(name: str, candidates: list[str]) -> str:
    suggestion = closest(name, candidates)
    return f" (did you mean {suggestion!r}?)" if suggestion else ""


def _listed(fields: list[str]) -> str:
    shown = ", ".join(fields[:MAX_LISTED_FIELDS])
    more = len(fields) - MAX_LISTED_FIELDS
    return shown + (f", … ({more} more)" if more > 0 else "") if fields else "none"


def check_stream_fields(
    settings: Settings, stream: str, schema: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    """Mapped source fields that a stream's schema does not declare.

    A schema without ``properties`` declares nothing to check against: no problems.

    Args:
        settings: Target settings.
        stream: Stream name.
        schema: The stream's schema (after stream maps and flattening).

    Returns:
        Errors (no identifier field at all) and warnings (each missing identifier or
        attribute field, when the stream still has an identifier).
    """
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return [], []
    fields = list(properties)
    missing = [
        f"identifier_mappings[{index}].field {m.field!r} ({m.label}) is not a field of stream "
        f"{stream!r}{_hint(m.field, fields)}"
        for index, m in enumerate(settings.identifiers)
        if m.field not in properties
    ]
    attributes = [
        f"attribute_mappings field {source!r} (-> {target.label}) is not a field of stream "
        f"{stream!r}{_hint(source, fields)}: that attribute is never sent for this stream"
        for source, target in settings.attributes
        if source not in properties
    ]
    if len(missing) == len(settings.identifiers):
        # Not one record of the stream could be sent: stop before reading them.
        fix = (
            f"the stream's fields: {_listed(fields)}. Fix identifier_mappings, or rename "
            "the field with stream maps"
        )
        return [f"{problem}; {fix}" for problem in missing], attributes
    identifiers = [f"{p}: that identifier is never sent for this stream" for p in missing]
    return [], identifiers + attributes


def unknown_settings(config: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    """Warnings for config keys that are no setting (their values are not shown).

    Args:
        config: The target's config.
        known: Every setting name (the target's and the SDK's built-in ones).

    Returns:
        One warning per unknown key.
    """
    known = sorted(known)
    return [
        f"unknown setting {key!r} is ignored{_hint(key, known)}"
        for key in config
        if key not in known
    ]
