"""tap-sfmc-de entry point (skeleton; real work lands with the tap issue)."""

from __future__ import annotations

from singer_sdk import Tap
from singer_sdk import typing as th


class TapSfmcDe(Tap):
    """Reads the rows of SFMC Data Extensions."""

    name = "tap-sfmc-de"
    config_jsonschema = th.PropertiesList(
        th.Property("client_id", th.StringType, required=True),
    ).to_dict()

    def discover_streams(self) -> list:
        """Return no streams yet."""
        return []
