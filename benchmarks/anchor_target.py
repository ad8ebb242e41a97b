"""Anchor: a singer-sdk Target whose BatchSink does nothing, SDK defaults.

    python -m benchmarks.anchor_target < SINGER_FILE

Everything the SDK does per record (parse, validate against the schema, batch) and nothing
more: the figure ``target-insider-one`` (phones off) is compared with.
"""

from __future__ import annotations

from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink
from typing_extensions import override


class NullSink(BatchSink):
    """Drops every batch."""

    @override
    def process_batch(self, context: dict) -> None:
        """Do nothing: the anchor measures the SDK's cost only."""


class AnchorTarget(Target):
    """One NullSink for every stream."""

    name = "target-anchor"
    config_jsonschema = th.PropertiesList().to_dict()
    default_sink_class = NullSink


if __name__ == "__main__":
    AnchorTarget.cli()
