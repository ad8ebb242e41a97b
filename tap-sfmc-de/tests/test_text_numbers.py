"""Numbers given as text (Meltano passes fractions from the environment that way)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from tap_sfmc_de.text_numbers import numbers_from_text

PROPERTIES = {
    "seconds": {"type": ["number", "null"]},
    "count": {"type": ["integer", "null"]},
    "name": {"type": ["string", "null"]},
    "either": {"type": ["number", "string"]},
}


def test_numeric_text_becomes_a_number_only_for_number_settings() -> None:
    config = {"seconds": " 0.5 ", "count": "3", "name": "0.5", "either": "0.5", "other": "1"}
    numbers_from_text(config, PROPERTIES)
    assert config == {
        "seconds": Decimal("0.5"), "count": 3, "name": "0.5", "either": "0.5", "other": "1",
    }  # fmt: skip


def test_text_that_is_no_number_is_left_for_the_schema_check() -> None:
    config = {"seconds": "NaN", "count": "1.5", "name": None}
    numbers_from_text(config, PROPERTIES)
    assert config == {"seconds": "NaN", "count": Decimal("1.5"), "name": None}


@given(st.decimals(allow_nan=False, allow_infinity=False, places=3))
def test_any_decimal_written_as_text_round_trips(value: Decimal) -> None:
    config = {"seconds": str(value)}
    numbers_from_text(config, PROPERTIES)
    assert config["seconds"] == value


@given(st.text(max_size=20))
def test_arbitrary_text_never_raises(text: str) -> None:
    config = {"seconds": text, "count": text}
    numbers_from_text(config, PROPERTIES)
    for value in config.values():
        assert isinstance(value, str | int | Decimal)
