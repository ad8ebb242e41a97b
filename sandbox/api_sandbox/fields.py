"""Data Extension field definitions and value conversions.

Three representations of a value exist:
- *stored*: what sits in sqlite (ints for Number/Boolean/Date, Decimal as an integer
  scaled by 10**scale so ordering and comparison are numeric and exact, text as text);
- *wire*: what SFMC puts on the wire (always a string, ``""`` for NULL);
- *typed*: JSON-friendly values for test comparison (ISO dates with offset, Decimal as
  a plain string, bool, int).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from api_sandbox import sfmc_time

FIELD_TYPES = ("Text", "Number", "Date", "Boolean", "EmailAddress", "Phone", "Decimal", "Locale")
TEXT_TYPES = frozenset({"Text", "EmailAddress", "Phone", "Locale"})
_DEFAULT_LENGTH = {"Text": 50, "EmailAddress": 254, "Phone": 50, "Locale": 5}
# Prefix of a raw wire value planted in a typed column (edge_values.py "wire garbage"):
# it keeps sqlite from converting "1.5" or "1e309" to a number; it never reaches the wire.
RAW_PREFIX = "~"
# What json.dumps(..., ensure_ascii=False) writes for a str (the C encoder when present).
_json_string = json.encoder.encode_basestring
_TRUE = frozenset({"true", "1", "y", "yes"})
_FALSE = frozenset({"false", "0", "n", "no"})


@dataclass
class Field:
    """One column of a Data Extension, as DataExtensionField describes it."""

    name: str
    field_type: str = "Text"
    is_primary_key: bool = False
    is_required: bool = False
    max_length: int | None = None
    scale: int | None = None
    default_value: str = ""

    def __post_init__(self) -> None:
        """Validate the type and fill the platform's default lengths."""
        if self.field_type not in FIELD_TYPES:
            raise ValueError(f"unknown field type {self.field_type!r} for {self.name!r}")
        if self.max_length is None and self.field_type in _DEFAULT_LENGTH:
            self.max_length = _DEFAULT_LENGTH[self.field_type]
        if self.field_type == "Decimal":
            self.max_length = self.max_length or 18
            self.scale = 0 if self.scale is None else self.scale
        if self.is_primary_key:
            self.is_required = True

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Field:
        """Build from an admin/config JSON object (snake_case or SOAP-style names)."""
        get = data.get
        return cls(
            name=str(get("name") or get("Name")),
            field_type=str(get("field_type") or get("FieldType") or get("type") or "Text"),
            is_primary_key=bool(get("is_primary_key", get("IsPrimaryKey", False))),
            is_required=bool(get("is_required", get("IsRequired", False))),
            max_length=get("max_length", get("MaxLength")),
            scale=get("scale", get("Scale")),
            default_value=str(get("default_value", "") or ""),
        )

    def to_json(self) -> dict[str, Any]:
        """JSON form for the admin API."""
        return asdict(self)

    @property
    def sql_type(self) -> str:
        """Sqlite column type; text compares case-insensitively like SQL Server."""
        if self.field_type in TEXT_TYPES:
            return "TEXT COLLATE NOCASE"
        return "INTEGER"

    # -- conversions -------------------------------------------------------------
    def to_stored(self, value: Any) -> Any:  # noqa: PLR0911, PLR0912 - one branch per type
        """Convert a JSON/CSV-ish input value to its stored form.

        Raises:
            ValueError: when the value does not fit the field type.
        """
        if value is None or (isinstance(value, str) and value == ""):
            return None
        kind = self.field_type
        if kind in TEXT_TYPES:
            return str(value)
        if kind == "Boolean":
            if isinstance(value, bool):
                return int(value)
            text = str(value).strip().lower()
            if text in _TRUE:
                return 1
            if text in _FALSE:
                return 0
            raise ValueError(f"not a boolean: {value!r}")
        if kind == "Number":
            if isinstance(value, bool):
                raise ValueError(f"not a number: {value!r}")
            if isinstance(value, int):
                return value
            text = str(value).strip()
            try:
                return int(text)
            except ValueError:
                number = Decimal(text)
                if number != number.to_integral_value():
                    raise ValueError(f"not a whole number: {value!r}") from None
                return int(number)
        if kind == "Decimal":
            try:
                number = Decimal(str(value).strip())
            except InvalidOperation as exc:
                raise ValueError(f"not a decimal: {value!r}") from exc
            return int((number * (10 ** (self.scale or 0))).to_integral_value())
        # Date
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return sfmc_time.parse_datetime(str(value))

    def to_wire(self, stored: Any) -> str:  # noqa: PLR0911 - one return per type
        """The platform's string form (REST rowset and SOAP)."""
        if stored is None:
            return ""
        kind = self.field_type
        if kind in TEXT_TYPES:
            return stored
        if isinstance(stored, str):  # a raw value planted in a typed column
            return stored.removeprefix(RAW_PREFIX)
        if kind == "Number":
            return str(stored)
        if kind == "Boolean":
            return "True" if stored else "False"
        if kind == "Date":
            return sfmc_time.format_us(stored)
        return self._decimal_text(stored)

    def wire_json(self, column: Iterable[Any]) -> list[str]:
        """The JSON text of each stored value's wire form (a rowset page's hot path).

        Exactly ``json.dumps(self.to_wire(v), ensure_ascii=False)`` per value: the common
        cases are written directly (a Number, Boolean, Date or Decimal is quoted ASCII that
        needs no escaping), anything else goes through ``to_wire``.
        """
        kind = self.field_type
        if kind in TEXT_TYPES:
            return ['""' if v is None else _json_string(v) for v in column]
        if kind == "Number":
            return [f'"{v}"' if type(v) is int else _json_string(self.to_wire(v)) for v in column]
        if kind == "Boolean":
            return [
                ('"True"' if v else '"False"') if type(v) is int else _json_string(self.to_wire(v))
                for v in column
            ]
        if kind == "Date":
            return [
                f'"{sfmc_time.format_us(v)}"' if type(v) is int else _json_string(self.to_wire(v))
                for v in column
            ]
        return [
            f'"{self._decimal_text(v)}"' if type(v) is int else _json_string(self.to_wire(v))
            for v in column
        ]

    def to_typed(self, stored: Any) -> Any:
        """A JSON value that tests can compare against the tap's typed records."""
        if stored is None:
            return None
        kind = self.field_type
        if isinstance(stored, str) and kind not in TEXT_TYPES:
            return stored.removeprefix(RAW_PREFIX)  # raw planted value: as on the wire
        if kind == "Boolean":
            return bool(stored)
        if kind == "Date":
            return sfmc_time.format_iso(stored)
        if kind == "Decimal":
            return self._decimal_text(stored)
        return stored

    def _decimal_text(self, stored: int) -> str:
        # Padding to the scale is an assumption: the real formatting is not observed
        # (sfmc-api.md §3.4 / open question 8).
        scale = self.scale or 0
        if scale == 0:
            return str(stored)
        sign = "-" if stored < 0 else ""
        whole, frac = divmod(abs(stored), 10**scale)
        return f"{sign}{whole}.{frac:0{scale}d}"
