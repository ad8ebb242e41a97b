"""Bounds: the cost of the unavoidable work alone, timed in-process.

A plugin cannot beat decoding its input (``json.loads`` of every line) or, with phones on,
validating each phone number once (``phonenumbers``): these rates are what the plugins'
rates are compared with.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import phonenumbers


def json_loads_seconds(path: Path) -> float:
    """Seconds to ``json.loads`` every line of the file (read into memory first)."""
    lines = path.read_bytes().splitlines()
    started = time.perf_counter()
    for line in lines:
        json.loads(line)
    return time.perf_counter() - started


def phone_values(records: list[dict], field: str) -> list[str]:
    """The non-empty values of ``field``, one per record that has one."""
    return [value for r in records if isinstance(value := r.get(field), str) and value]


def phonenumbers_seconds(values: list[str], region: str | None) -> float:
    """Seconds to parse each value, check it is valid and format the valid ones as E.164."""
    e164 = phonenumbers.PhoneNumberFormat.E164
    started = time.perf_counter()
    for value in values:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            phonenumbers.format_number(number, e164)
    return time.perf_counter() - started
