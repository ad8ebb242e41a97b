"""Packing serialized users into request bodies within Insider's limits.

Each user is serialized once (compact JSON, UTF-8). A request body is the exact byte string
``{"skip_hook":<bool>[,"not_append":true],"users":[<user>,...]}``, so its size is known before it is
built: ``len(prefix) + sum(len(user)) + commas + len(suffix)``. Requests hold at most
``max_users`` users and ``max_bytes`` bytes; a single user that cannot fit on its own is
reported so the caller can dead-letter it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import msgspec

from target_insider_one.text import LINE_BREAKS, escape_line_breaks

# msgspec writes the same compact JSON value as json.dumps several times faster (the
# encoding was about a tenth of the target's CPU time). It writes NaN and infinities as
# null where json.dumps(allow_nan=False) raises: the mapping never lets them through, and
# a float that is not finite is sent to the reference encoder (which raises) to be sure.
_ENCODER = msgspec.json.Encoder()
_LINE_BREAK_BYTES = re.compile(b"|".join(re.escape(c.encode()) for c in LINE_BREAKS))
# Every line break's UTF-8 form starts with one of these (U+0085 is C2 85, U+2028/9 are
# E2 80 A8/A9; test_payload checks it): two substring tests are faster than the regex
# search, which was a twentieth of the target's CPU time and is almost always false.
_NEL_BYTES = "\x85".encode()
_SEPARATOR_LEAD = "\u2028".encode()[:2]


def serialize_user(user: dict[str, Any]) -> bytes:
    """Serialize one user exactly as it will appear in the request.

    Args:
        user: The user object: JSON types only (str, int, float, bool, list, dict), as the
            mapping builds it.

    Returns:
        Compact UTF-8 JSON, with U+0085/U+2028/U+2029 escaped (so a dry-run file, which holds
        the exact bodies, never breaks a line-based reader).

    Raises:
        UnicodeEncodeError: If a string is not valid Unicode (mapping rejects those first).
    """
    try:
        data = _ENCODER.encode(user)
    except (TypeError, ValueError, OverflowError):
        # msgspec refuses integers over 64 bits and lone surrogates: the stdlib encoder
        # gives the reference result (or the reference error) for those.
        return serialize_user_stdlib(user)
    if b"null" in data and _has_non_finite(user):
        return serialize_user_stdlib(user)  # raises, as the stdlib encoder does
    if (_NEL_BYTES in data or _SEPARATOR_LEAD in data) and _LINE_BREAK_BYTES.search(data):
        return escape_line_breaks(data.decode()).encode()
    return data


def serialize_user_stdlib(user: dict[str, Any]) -> bytes:
    """The reference encoding (``json.dumps``): the same JSON value as :func:`serialize_user`.

    Args:
        user: The user object.

    Returns:
        Compact UTF-8 JSON with U+0085/U+2028/U+2029 escaped.
    """
    text = json.dumps(user, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return escape_line_breaks(text).encode()


def _has_non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    return False


def body_prefix(skip_hook: bool, not_append: bool = False) -> bytes:
    """The bytes before the first user.

    Args:
        skip_hook: Value of the top-level ``skip_hook``.
        not_append: Also send ``not_append: true`` at the top level. Where Insider reads it
            is disputed (per user in its own sample, top level in other integrations), so
            the target sends it in both places; each user carries it too.

    Returns:
        The prefix.
    """
    flags = b'{"skip_hook":' + (b"true" if skip_hook else b"false")
    if not_append:
        flags += b',"not_append":true'
    return flags + b',"users":['


BODY_SUFFIX = b"]}"


def build_body(users: list[bytes], skip_hook: bool, not_append: bool = False) -> bytes:
    """Assemble a request body from serialized users.

    Args:
        users: Serialized users.
        skip_hook: Value of the top-level ``skip_hook``.
        not_append: Whether to send the top-level ``not_append: true`` too.

    Returns:
        The body bytes.
    """
    return body_prefix(skip_hook, not_append) + b",".join(users) + BODY_SUFFIX


@dataclass
class RequestPlan:
    """One request: which items (indexes into the batch) it carries, and its body."""

    items: list[int]
    body: bytes


def plan_requests(
    users: list[bytes],
    *,
    skip_hook: bool,
    max_users: int,
    max_bytes: int,
    not_append: bool = False,
) -> tuple[list[RequestPlan], list[int]]:
    """Split serialized users into requests, in order.

    Args:
        users: Serialized users, in batch order.
        skip_hook: Value of the top-level ``skip_hook``.
        max_users: Maximum users per request.
        max_bytes: Maximum body size in bytes.
        not_append: Whether to send the top-level ``not_append: true`` too.

    Returns:
        The requests, and the indexes of users too large to send even alone.
    """
    overhead = len(body_prefix(skip_hook, not_append)) + len(BODY_SUFFIX)
    plans: list[RequestPlan] = []
    oversize: list[int] = []
    current: list[int] = []
    size = overhead

    def flush() -> None:
        if current:
            plans.append(
                RequestPlan(
                    list(current), build_body([users[i] for i in current], skip_hook, not_append)
                )
            )

    for index, user in enumerate(users):
        if overhead + len(user) > max_bytes:
            oversize.append(index)
            continue
        extra = len(user) + (1 if current else 0)
        if current and (len(current) >= max_users or size + extra > max_bytes):
            flush()
            current = []
            size = overhead
            extra = len(user)
        current.append(index)
        size += extra
    flush()
    return plans, oversize
