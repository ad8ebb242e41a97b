"""SFMC Data Extension field metadata to JSON schema.

Type map: Text/EmailAddress/Phone/Locale -> string (maxLength where known),
Number -> integer, Decimal -> number (values emitted as Decimal, so no float rounding),
Boolean -> boolean, Date -> string/date-time (UTC). Every column is nullable except
primary-key columns. A DE without a primary key gets no key properties (see README).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

STRING_TYPES = frozenset({"text", "emailaddress", "phone", "locale"})
# Lengths SFMC uses when MaxLength is absent from the field metadata.
DEFAULT_LENGTHS = {"emailaddress": 254, "phone": 50, "locale": 5}
KIND_BY_TYPE = {
    "number": "integer",
    "decimal": "number",
    "boolean": "boolean",
    "date": "date-time",
}


@dataclass(frozen=True)
class DEField:
    """One column of a Data Extension as DataExtensionField describes it."""

    name: str
    field_type: str
    is_primary_key: bool = False
    is_required: bool = False
    max_length: int | None = None
    scale: int | None = None
    ordinal: int = 0

    @property
    def kind(self) -> str:
        """The JSON kind used by the value converter (unknown types fall back to string)."""
        return KIND_BY_TYPE.get(self.field_type.lower(), "string")


def property_schema(field: DEField) -> dict[str, Any]:
    """Build the JSON-schema property for one field.

    Args:
        field: The field metadata.

    Returns:
        A JSON-schema fragment.
    """
    kind = field.kind
    nullable = not field.is_primary_key
    if kind == "date-time":
        prop: dict[str, Any] = {"type": ["string"], "format": "date-time"}
    else:
        prop = {"type": [kind]}
    if nullable:
        prop["type"].append("null")
    lowered = field.field_type.lower()
    if lowered in STRING_TYPES:
        length = field.max_length or DEFAULT_LENGTHS.get(lowered)
        if length:
            prop["maxLength"] = length
    return prop


def build_schema(fields: list[DEField]) -> dict[str, Any]:
    """Build a stream schema from fields, ordered by Ordinal.

    Args:
        fields: Field metadata in any order (SOAP does not sort them).

    Returns:
        The JSON schema of a record.
    """
    ordered = sorted(fields, key=lambda f: f.ordinal)
    return {
        "type": "object",
        "properties": {f.name: property_schema(f) for f in ordered},
        "required": [f.name for f in ordered if f.is_primary_key],
    }


def key_properties(fields: list[DEField]) -> list[str]:
    """Primary-key column names in ordinal order (empty when the DE has no primary key).

    Args:
        fields: Field metadata.

    Returns:
        The key property names.
    """
    return [f.name for f in sorted(fields, key=lambda f: f.ordinal) if f.is_primary_key]


def stream_name_for_key(de_key: str) -> str:
    """Derive the stable stream name for a DE external key.

    ``Customers`` -> ``de_customers``; ``My-DE.2024`` -> ``de_my_de_2024``.

    Args:
        de_key: The DE's external key (CustomerKey).

    Returns:
        ``de_`` plus the lowercased key with runs of other characters turned into ``_``.
    """
    slug = re.sub(r"[^a-z0-9]+", "_", de_key.strip().lower()).strip("_")
    return f"de_{slug or 'unnamed'}"
