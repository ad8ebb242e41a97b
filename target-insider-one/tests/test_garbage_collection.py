"""The plugin's command sets the collector's thresholds for the run."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from target_insider_one.garbage_collection import THRESHOLDS
from target_insider_one.target import TargetInsiderOne


@pytest.fixture
def default_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("default_thresholds")
def test_the_command_collects_less_often() -> None:
    result = CliRunner().invoke(TargetInsiderOne.cli, ["--about", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert gc.get_threshold() == THRESHOLDS
    assert THRESHOLDS[0] > 700  # what the change is for: fewer passes than the default
