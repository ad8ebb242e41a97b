"""Numeric settings given as text, as Meltano passes them from environment variables.

Meltano 4.4 cannot pass a fraction from an environment variable as a number (its
``decimal`` kind fails to write the config file, ``integer`` rejects "0.5"), so
``meltano.yml`` declares the number settings ``kind: string`` and the text arrives here:
``TAP_SFMC_DE_BACKOFF_BASE_SECONDS=0.5`` becomes ``"0.5"`` in the config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from decimal import Decimal
from typing import Any

# ASCII digits only (Decimal() would also take "١٢" or "NaN"); anything else is left as
# text for the schema check to reject with its usual message.
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def numbers_from_text(config: MutableMapping[str, Any], properties: Mapping[str, Any]) -> None:
    """Replace, in place, numeric text given for a number or integer setting by the number.

    Args:
        config: The plugin's config, as read from its config file.
        properties: The config schema's ``properties``.
    """
    for name, schema in properties.items():
        value = config.get(name)
        if isinstance(value, str) and _takes_number(schema) and _NUMBER.fullmatch(value.strip()):
            number = Decimal(value.strip())  # what the SDK reads a JSON fraction as
            is_whole = number == number.to_integral_value()
            config[name] = int(number) if is_whole and "integer" in _types(schema) else number


def _types(schema: Mapping[str, Any]) -> set[str]:
    types = schema.get("type", [])
    return {types} if isinstance(types, str) else set(types)


def _takes_number(schema: Mapping[str, Any]) -> bool:
    types = _types(schema)
    return bool(types & {"number", "integer"}) and "string" not in types
