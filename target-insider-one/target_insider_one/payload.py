"""Packing serialized users into request bodies within Insider's limits.

Each user is serialized once (compact JSON, UTF-8). A request body is the exact byte string
``{"skip_hook":<bool>[,"not_append":true],"users":[<user>,...]}``, so its size is known before it is
built: ``len(prefix) + sum(len(user)) + commas + len(suffix)``. Requests hold at most
``max_users`` users and ``max_bytes`` bytes; a single user that cannot fit on its own is
reported so the caller can dead-letter it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from target_insider_one.text import escape_line_breaks


def serialize_user(user: dict[str, Any]) -> bytes:
    """Serialize one user exactly as it will appear in the request.

    Args:
        user: The user object.

    Returns:
        Compact UTF-8 JSON, with U+0085/U+2028/U+2029 escaped (so a dry-run file, which holds
        the exact bodies, never breaks a line-based reader).

    Raises:
        UnicodeEncodeError: If a string is not valid Unicode (mapping rejects those first).
    """
    text = json.dumps(user, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return escape_line_breaks(text).encode()


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
