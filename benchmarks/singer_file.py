"""The Singer file the tap wrote: the input of the bounds, the anchors and the target runs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SingerStream:
    """The one stream of a Singer file: its SCHEMA message and its records, in order."""

    name: str
    schema: dict[str, Any]
    key_properties: list[str]
    records: list[dict[str, Any]]


def count_records(path: Path) -> int:
    """RECORD messages in the file (without decoding every line)."""
    with path.open("rb") as lines:
        return sum(1 for line in lines if b'"RECORD"' in line[:40])


def read_stream(path: Path) -> SingerStream:
    """The first SCHEMA message and every RECORD of that stream.

    Raises:
        ValueError: when the file holds no SCHEMA message.
    """
    schema: dict[str, Any] | None = None
    records: list[dict[str, Any]] = []
    with path.open("rb") as lines:
        for line in lines:
            message = json.loads(line)
            if message["type"] == "SCHEMA" and schema is None:
                schema = message
            elif message["type"] == "RECORD" and schema and message["stream"] == schema["stream"]:
                records.append(message["record"])
    if schema is None:
        raise ValueError(f"{path} holds no SCHEMA message")
    return SingerStream(
        schema["stream"], schema["schema"], list(schema.get("key_properties") or []), records
    )
