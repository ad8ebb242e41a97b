"""target-insider-one entry point (skeleton; real work lands with the target issue)."""

from __future__ import annotations

from singer_sdk import Target
from singer_sdk import typing as th


class TargetInsiderOne(Target):
    """Upserts records into Insider One as user profiles."""

    name = "target-insider-one"
    config_jsonschema = th.PropertiesList(
        th.Property("partner_name", th.StringType, required=True),
    ).to_dict()
