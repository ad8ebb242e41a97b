"""`meltano run` with wrong Insider credentials stops at the target's start-up check."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from api_sandbox.testing import SandboxProcess

    from tests.conftest import MeltanoProject

pytestmark = pytest.mark.e2e


def test_wrong_api_key_fails_the_run_cleanly_before_anything_is_sent(
    project: MeltanoProject, sandbox: SandboxProcess
) -> None:
    project.env["TARGET_INSIDER_ONE_API_KEY"] = "wrong-key-value"
    result = project.run("run", "tap-sfmc-de", "target-insider-one", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "TARGET_INSIDER_ONE_API_KEY" in output
    assert "wrong-key-value" not in output
    # Neither plugin prints a traceback. (Meltano 4.4 itself sometimes does: when the tap
    # has already written lines that Meltano is still piping into the exited target, its
    # pipe writer re-raises BrokenPipeError; see the target README, "Start-up check".)
    plugin_lines = [
        line
        for line in output.splitlines()
        if re.search(r"\] (tap-sfmc-de|target-insider-one) ", line)
    ]
    assert any(
        "target-insider-one stopped: Insider rejected the credentials" in line
        for line in plugin_lines
    )
    assert not [line for line in plugin_lines if "Traceback" in line or "BrokenPipe" in line]
    assert [r["status"] for r in sandbox.requests(endpoint="columns")] == [403]
    assert sandbox.requests() == []
