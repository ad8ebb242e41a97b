"""Unit tests of the preflight table and its exit codes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from tap_sfmc_de.preflight import Check, Grade, PreflightExit, exit_code, render

CHECKS = st.lists(
    st.builds(
        Check,
        subject=st.text(min_size=1, max_size=40).filter(str.strip),
        grade=st.sampled_from(list(Grade)),
        finding=st.text(max_size=300),
        fix=st.text(max_size=200),
    ),
    max_size=12,
)


@given(CHECKS)
def test_exit_code_is_the_worst_grade(checks):
    grades = {c.grade for c in checks}
    expected = (
        PreflightExit.FAIL
        if Grade.FAIL in grades
        else PreflightExit.WARN_ONLY
        if Grade.WARN in grades
        else PreflightExit.OK
    )
    assert exit_code(checks) == expected


@given(CHECKS)
def test_the_table_ends_with_the_counts_and_the_exit_code(checks):
    text = render("title", checks)
    last = text.splitlines()[-1]
    assert last.endswith(f"-> exit {int(exit_code(checks))}")
    assert f"{sum(c.grade == Grade.FAIL for c in checks)} FAIL" in last


def test_long_findings_wrap_within_the_width():
    checks = [Check("Customers: $filter dates", Grade.WARN, "word " * 60, "fix " * 40)]
    lines = render("t", checks, width=80).splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert any(line.strip().startswith("fix: ") for line in lines)


def test_config_from_the_environment_keeps_numbers_numbers(monkeypatch):
    """Meltano's plugin commands pass settings only as environment variables (--config ENV)."""
    from types import SimpleNamespace

    from tap_sfmc_de.preflight_cli import config_from
    from tap_sfmc_de.tap import TapSfmcDe

    monkeypatch.setenv("TAP_SFMC_DE_REQUEST_TIMEOUT", "30")
    monkeypatch.setenv("TAP_SFMC_DE_PAGE_SIZE", "10")
    config = config_from(TapSfmcDe, SimpleNamespace(config={}, parse_env=True))
    assert config["request_timeout"] == 30.0
    assert config["page_size"] == 10
