"""Per-user validation of an Insider upsert: the platform's error keys and messages.

Each check decides one rule and yields ``(path, message)`` problems; ``validate_user``
keys them ``users.<i>.<path>`` as the real reply does (insider-api.md §2.2/§8.2). Rules
the sources do not spell out are marked as guesses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

EMAIL_RULE = r"regexp(^.+@.+\..+$)"
PHONE_RULE = r"regexp(^\+[1-9]\d{6,14}$)"
EVENT_RULE = r"regexp(^[a-z0-9][a-zA-Z0-9._-]*$)"
# The error texts ("...: bad request") suggest a Go service, so the rules are applied with
# Go's RE2 semantics: "." never matches a newline, "$" only matches at the very end (Python's
# "$" also matches before a trailing newline, hence fullmatch), and \d is ASCII-only.
_EMAIL_RE = re.compile(r".+@.+\..+")
_PHONE_RE = re.compile(r"\+[1-9]\d{6,14}", re.ASCII)
_EVENT_RE = re.compile(r"[a-z0-9][a-zA-Z0-9._-]*", re.ASCII)
_IDENTIFIER_KEYS = ("email", "phone_number", "uuid", "custom")
_PURCHASE_PARAMS = ("event_group_id", "currency", "unit_sale_price", "quantity")
_IDENTITY_MISSING = "either insider_id or idenifiers must be specified"  # sic, as the API says

Problems = Iterator[tuple[str, str]]


def validate_user(index: int, user: Any) -> dict[str, list[str]]:
    """Errors for one user, keyed ``users.<i>.<path>.<rule>``; empty when valid."""
    errors: dict[str, list[str]] = {}
    for path, message in _problems(user):
        errors.setdefault(f"users.{index}.{path}", []).append(message)
    return errors


def _problems(user: Any) -> Problems:
    if not isinstance(user, dict):
        yield "type(object)", f"user must be an object: {json.dumps(user)}"  # key is a guess
        return
    yield from _identity(user)
    yield from _identifiers(user.get("identifiers"))
    yield from _payload(user)
    yield from _events(user.get("events"))


def _identity(user: dict[str, Any]) -> Problems:
    """A user needs identifiers or an insider_id."""
    if not user.get("identifiers") and not user.get("insider_id"):
        yield "identifiers.required", _IDENTITY_MISSING
        yield "insider_id.required", _IDENTITY_MISSING


def _identifiers(identifiers: Any) -> Problems:
    """``identifiers`` is an object of known keys with valid values."""
    if isinstance(identifiers, dict):
        for key, value in identifiers.items():
            yield from _identifier(key, value)
    elif identifiers is not None and identifiers != {}:
        yield "identifiers.type(object)", "identifiers must be an object"  # key is a guess


def _identifier(key: str, value: Any) -> Problems:
    """One identifier: a known key, a string (custom: strings), email/phone formats."""
    if key not in _IDENTIFIER_KEYS:
        yield (
            "identifiers.*.in(defaults_column)",
            "key must be one of phone_number(pn), email(em) or uuid",
        )
    elif key == "custom":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            yield (
                "identifiers.*.type(string)",
                f"custom identifiers must be strings: {json.dumps(value)}",
            )
    elif not isinstance(value, str):
        yield "identifiers.*.type(string)", f"{key} must be string: {json.dumps(value)}"
    elif key == "email" and not _EMAIL_RE.fullmatch(value):
        yield f"identifiers.*.{EMAIL_RULE}", f"not a valid email address: {value}"
    elif key == "phone_number" and not _PHONE_RE.fullmatch(value):
        yield f"identifiers.*.{PHONE_RULE}", f"user has an invalid phone number: {value}"


def _payload(user: dict[str, Any]) -> Problems:
    """A user carries attributes or events (documented; the error key is the sandbox's guess)."""
    attributes, events = user.get("attributes"), user.get("events")
    if not (isinstance(attributes, dict) and attributes) and not (
        isinstance(events, list) and events
    ):
        yield "attributes.required", "either attributes or events must be specified"


def _events(events: Any) -> Problems:
    """Each event has a valid name; a purchase carries its required parameters."""
    if not isinstance(events, list):
        return
    for j, event in enumerate(events):
        name = event.get("event_name") if isinstance(event, dict) else None
        if not isinstance(name, str) or not _EVENT_RE.fullmatch(name):
            yield f"events.{j}.event_name.*.{EVENT_RULE}", f"invalid event name: {name}"
        elif name == "purchase":
            params = event.get("event_params") or {}
            for p in _PURCHASE_PARAMS:
                if p not in params:
                    yield (
                        f"events.{j}.event_params.*.required",
                        f"{p} parameter is required on purchase event",
                    )
