"""SFMC wall-clock formatting: the cached date and clock parts equal a plain format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api_sandbox import sfmc_time
from hypothesis import given
from hypothesis import strategies as st

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _reference(seconds: int) -> str:
    """``M/d/yyyy h:mm:ss AM``, straight from datetime (no caching, no split)."""
    value = _EPOCH + timedelta(seconds=seconds)
    half = "AM" if value.hour < 12 else "PM"
    return (
        f"{value.month}/{value.day}/{value.year:04d} "
        f"{value.hour % 12 or 12}:{value.minute:02d}:{value.second:02d} {half}"
    )


# Year 1 to year 9999, both ends included: SFMC dates in year 9999 are real.
SECONDS = st.integers(
    min_value=int((datetime(1, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds()),
    max_value=int((datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - _EPOCH).total_seconds()),
)


@given(SECONDS)
def test_format_us_equals_a_plain_format(seconds: int) -> None:
    assert sfmc_time.format_us(seconds) == _reference(seconds)


def test_format_us_at_midnight_noon_and_before_1970() -> None:
    assert sfmc_time.format_us(0) == "1/1/1970 12:00:00 AM"
    assert sfmc_time.format_us(12 * 3600) == "1/1/1970 12:00:00 PM"
    assert sfmc_time.format_us(-1) == "12/31/1969 11:59:59 PM"
