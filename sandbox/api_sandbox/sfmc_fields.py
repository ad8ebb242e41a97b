"""REST ``GET /data/v1/customobjects/{guid}/fields``: a DE's schema in the REST shape."""

from __future__ import annotations

import uuid
from typing import Any

from api_sandbox.store import DataExtension, Store

_NO_LENGTH = frozenset({"Number", "Date", "Boolean"})  # these carry length 0


def find(store: Store, object_id: str) -> DataExtension | None:
    """The DE whose ``customObjectId`` is ``object_id`` (the route is by id, not key)."""
    return next((de for de in list(store.des.values()) if de.object_id == object_id), None)


def rest_fields(de: DataExtension) -> dict[str, Any]:
    """The response body: the DE's id and its fields in definition order."""
    fields = [
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{de.key}.{f.name}")),
            "name": f.name,
            "type": f.field_type,
            "length": f.max_length if f.field_type not in _NO_LENGTH else 0,
            "scale": f.scale or 0,
            "ordinal": i,
            "isPrimaryKey": f.is_primary_key,
            "isNullable": not f.is_required,
            "isHidden": False,
            "isReadOnly": False,
            "defaultValue": f.default_value,
            "description": "",
            "storagetype": "Plain",
        }
        for i, f in enumerate(de.fields)
    ]
    return {"id": de.object_id, "fields": fields}
