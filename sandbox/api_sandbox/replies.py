"""What a handler returns: status, bytes, content type and headers (no HTTP plumbing)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

JSON = "application/json; charset=utf-8"
XML = "text/xml; charset=utf-8"
TEXT = "text/plain; charset=utf-8"
HTML = "text/html"


@dataclass(frozen=True)
class Reply:
    """One HTTP answer; ``server.Handler.send_reply`` writes it."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
    """A JSON answer; non-ASCII stays UTF-8, as the real APIs send it."""
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    return Reply(status, body, JSON, headers or {})


def ok(obj: Any) -> Reply:
    """``200`` with a JSON body."""
    return json_reply(HTTPStatus.OK, obj)


def xml_reply(status: int, xml: str, headers: dict[str, str] | None = None) -> Reply:
    """A SOAP (XML) answer."""
    return Reply(status, xml.encode("utf-8"), XML, headers or {})
