"""Record validation against the stream's JSON schema, compiled once per stream.

The SDK's default validator (``jsonschema``) interprets the schema for every record and
was ~40% of the target's CPU time on a 30,000-record run. ``fastjsonschema`` compiles the
schema to Python once; the checks are the same (types, required, enums), and string
formats such as ``date-time`` stay unchecked, as in the SDK's default, because
:mod:`target_insider_one.values` parses dates itself and reports bad ones per attribute.

Any valid JSON Schema keyword must validate without crashing. The compiled code can still
fail on values the SDK's reader produces: ``multipleOf: 0.01`` is compiled as a float
literal while numbers arrive as ``Decimal`` (``Decimal / float`` is a ``TypeError``). A
record on which the compiled check fails with anything but a validation error is checked
again with the SDK's ``jsonschema`` validator (exact ``Decimal`` arithmetic); if that fails
too, the record is accepted unchecked and a warning is logged once per stream and error.
"""

from __future__ import annotations

import logging
from typing import Any

import fastjsonschema
from singer_sdk.exceptions import InvalidRecord
from singer_sdk.sinks.core import BaseJSONSchemaValidator, JSONSchemaValidator
from typing_extensions import override

from target_insider_one.flat_schema_check import quick_check

LOGGER = logging.getLogger("target_insider_one.schema_validation")


class CompiledSchemaValidator(BaseJSONSchemaValidator):
    """Validates records with a schema compiled by ``fastjsonschema``."""

    @override
    def __init__(self, schema: dict[str, Any]) -> None:
        """Compile the schema.

        Args:
            schema: The stream's JSON schema.

        Raises:
            fastjsonschema.JsonSchemaDefinitionException: If the schema cannot be compiled
                (the caller then falls back to the SDK's validator).
        """
        super().__init__(schema)
        self._validate = fastjsonschema.compile(schema, use_formats=False)
        self._accepts = quick_check(schema)
        self._fallback: JSONSchemaValidator | None = None
        self._warned: set[str] = set()

    @override
    def validate(self, record: dict[str, Any]) -> None:
        """Validate one record.

        Args:
            record: The record.

        Raises:
            InvalidRecord: With the failing path and rule (never the value itself).
        """
        if self._accepts is not None and self._accepts(record):
            return
        try:
            self._validate(record)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise InvalidRecord(f"Record Message Validation Error: {exc.message}", record) from exc
        except Exception as exc:  # noqa: BLE001 - a validator's own failure must not stop the run
            self._validate_again(record, exc)

    def _validate_again(self, record: dict[str, Any], first: Exception) -> None:
        """Check with the SDK's interpreter; accept the record if that cannot check it either.

        Raises:
            InvalidRecord: The SDK's validator says the record does not match.
        """
        try:
            if self._fallback is None:
                self._fallback = JSONSchemaValidator(self.schema)
            self._fallback.validate(record)
        except InvalidRecord:
            raise
        except Exception as exc:  # noqa: BLE001 - same: never stop the run on a checker bug
            problem = f"{type(first).__name__} / {type(exc).__name__}"
            if problem not in self._warned:
                self._warned.add(problem)
                LOGGER.warning(
                    "Records could not be checked against their schema (%s); they are "
                    "accepted unchecked (further occurrences are not logged)",
                    problem,
                )


def compile_validator(schema: dict[str, Any]) -> BaseJSONSchemaValidator | None:
    """A compiled validator, or None when fastjsonschema cannot handle the schema.

    Args:
        schema: The stream's JSON schema.

    Returns:
        The validator, or None (use the SDK's interpreter instead).
    """
    try:
        return CompiledSchemaValidator(schema)
    except Exception:  # noqa: BLE001 - any compile failure (e.g. a regex re cannot read)
        return None
