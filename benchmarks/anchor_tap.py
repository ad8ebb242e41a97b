"""Anchor: the smallest singer-sdk tap emitting the same records from memory, SDK defaults.

    python -m benchmarks.anchor_tap SINGER_FILE [--load-only] > /dev/null

One Stream with the SCHEMA (name, schema, key properties) of the tap's Singer file;
``get_records`` yields that file's records, loaded before the sync starts. With
``--load-only`` the process loads the file and exits: the benchmark subtracts that wall
time (interpreter start, imports, loading) from the full run's, so the anchor's figure is
the SDK's own per-record emission cost — the part ``tap-sfmc-de`` is compared with.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from typing_extensions import override

from benchmarks.singer_file import SingerStream, read_stream


class MemoryStream(Stream):
    """Yields records already in memory."""

    def __init__(self, tap: Tap, stream: SingerStream) -> None:
        super().__init__(tap, schema=stream.schema, name=stream.name)
        self.primary_keys = stream.key_properties
        self._records = stream.records

    @override
    def get_records(self, context: dict | None) -> Iterable[dict[str, Any]]:
        yield from self._records


class AnchorTap(Tap):
    """One MemoryStream; nothing else."""

    name = "tap-anchor"
    config_jsonschema = th.PropertiesList().to_dict()

    def __init__(self, stream: SingerStream) -> None:
        self._stream = stream
        super().__init__(config={}, validate_config=True)

    @override
    def discover_streams(self) -> list[Stream]:
        return [MemoryStream(self, self._stream)]


def main() -> None:
    """Load the Singer file, then sync it to stdout (or exit after loading)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("singer_file", type=Path)
    parser.add_argument("--load-only", action="store_true", help="load the records and exit")
    args = parser.parse_args()
    stream = read_stream(args.singer_file)
    if args.load_only:
        return
    AnchorTap(stream).sync_all()


if __name__ == "__main__":
    main()
