"""The retry policy, and the same Retry-After rule as tap-sfmc-de's."""

import datetime as dt
import email.utils
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from target_insider_one.retries import RetryPolicy, parse_retry_after

tap_retries = pytest.importorskip("tap_sfmc_de.retries")

NOW = dt.datetime(2024, 5, 8, 21, 0, 0, tzinfo=dt.UTC)
# Header values and what both plugins must read from them (None: ignored, back off).
RETRY_AFTER_TABLE = [
    ("7", 7.0),
    (" 7 ", 7.0),
    ("0", 0.0),
    ("1.5", 1.5),
    ("100000", 100000.0),  # returned as is; the policy caps the wait
    ("9" * 400, math.inf),
    (7, 7.0),
    (2.5, 2.5),
    ("-1", None),
    ("inf", None),
    ("nan", None),
    ("1e3", None),
    ("١٢", None),  # Arabic-Indic digits: float() reads them, HTTP does not
    ("", None),
    ("soon", None),
    (None, None),
    (True, None),
    (-3, None),
    (float("nan"), None),
    (email.utils.format_datetime(NOW + dt.timedelta(seconds=90), usegmt=True), 90.0),
    (email.utils.format_datetime(NOW - dt.timedelta(seconds=90), usegmt=True), 0.0),
    ("Wed, 08 May 2024 21:00:30 -0000", 30.0),
    ("Wed, 99 Foo 2024 25:00:00 GMT", None),
]
SAME = {"max_retries": 5, "backoff_base_seconds": 2.0, "backoff_max_seconds": 60.0}


def policies(cap: float = 300.0):
    target = RetryPolicy(**SAME, request_timeout=5, max_retry_after_seconds=cap,
                         retry_budget_seconds=900)  # fmt: skip
    tap = tap_retries.RetryPolicy(**SAME, request_timeout=5, max_retry_after_seconds=cap,
                                  retry_budget_seconds=900)  # fmt: skip
    return target, tap


@pytest.mark.parametrize(("value", "seconds"), RETRY_AFTER_TABLE)
def test_both_plugins_read_retry_after_the_same_way(value, seconds):
    assert parse_retry_after(value, NOW) == seconds
    assert tap_retries.parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(("value", "_seconds"), RETRY_AFTER_TABLE)
def test_both_plugins_cap_and_jitter_the_requested_wait_the_same_way(value, _seconds):
    target, tap = policies()
    requested = parse_retry_after(value, NOW)
    if requested is None:
        return  # the backoff applies (see test_backoff_stays_within_backoff_max)
    random.seed(13)
    ours = target.wait(0, requested)
    random.seed(13)
    assert ours == tap.wait(0, requested)
    assert requested <= ours <= requested + 0.1 or ours == 300


@given(value=st.text() | st.integers() | st.floats() | st.none() | st.booleans())
@settings(max_examples=200)
def test_the_rules_agree_on_anything(value):
    ours, theirs = parse_retry_after(value, NOW), tap_retries.parse_retry_after(value, NOW)
    assert ours == theirs
    assert ours is None or ours >= 0


def test_give_up_rules_match_the_tap():
    target, tap = policies()
    for attempt, waited, wait in [(4, 0, 1), (5, 0, 1), (0, 899, 2), (0, 100, 2)]:
        assert target.give_up_reason(attempt, waited, wait) == tap.give_up_reason(
            attempt, waited, wait
        )


@given(attempt=st.integers(0, 30))
@settings(max_examples=100)
def test_backoff_stays_within_backoff_max(attempt):
    target, _ = policies()
    nominal = min(2.0 * 2**attempt, 60.0)
    assert nominal / 2 <= target.backoff(attempt) <= nominal
