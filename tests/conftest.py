"""Fixtures for the end-to-end tests of the Meltano project.

Every test here runs real processes: `meltano` (which runs the plugins' CLIs from their own
virtualenvs under `.meltano/`) against the sandbox over HTTP on 127.0.0.1. Meltano's system
database (state) is a per-session temporary SQLite file, so the tests never touch the
developer's own `dev` state, and the sandbox URLs reach the plugins the way a user's would:
through `TAP_SFMC_DE_*` / `TARGET_INSIDER_ONE_*` environment variables.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from api_sandbox.testing import SandboxProcess

ROOT = Path(__file__).resolve().parent.parent
MELTANO = str(Path(sys.executable).with_name("meltano"))
STATE_ID = "dev:tap-sfmc-de-to-target-insider-one"


@dataclass
class MeltanoProject:
    """The repository's Meltano project, run against one sandbox with isolated state."""

    env: dict[str, str]
    dead_letter_path: Path
    workdir: Path
    logs: list[str] = field(default_factory=list)

    def run(
        self, *args: str, timeout: float = 300, check: bool = True, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `meltano ARGS` in the project and keep its output for failure reports."""
        result = subprocess.run(
            [MELTANO, *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False, input=input_text,
        )  # fmt: skip
        self.logs.append(f"$ meltano {' '.join(args)}\n{result.stdout}\n{result.stderr}")
        if check and result.returncode != 0:
            raise AssertionError(
                f"meltano {' '.join(args)} exited {result.returncode}\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-8000:]}"
            )
        return result

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start `meltano ARGS` in the background (own process group, so it can be killed)."""
        return subprocess.Popen(
            [MELTANO, *args], cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip

    @staticmethod
    def kill(proc: subprocess.Popen[str]) -> None:
        """Kill a background run and everything it started (tap, target)."""
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()

    def state(self, state_id: str = STATE_ID) -> dict[str, Any]:
        """The state Meltano stored for a pipeline (`meltano state get`)."""
        out = self.run("state", "get", state_id).stdout.strip().splitlines()
        return json.loads(out[-1])

    def dead_letters(self) -> list[dict[str, Any]]:
        """Every dead-letter line the target wrote."""
        if not self.dead_letter_path.exists():
            return []
        lines = self.dead_letter_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]


@pytest.fixture(scope="session")
def meltano_installed() -> None:
    """`meltano install` once per session (plugin virtualenvs under .meltano/)."""
    result = subprocess.run(
        [MELTANO, "install"], cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"meltano install failed:\n{result.stdout}\n{result.stderr[-6000:]}")


@pytest.fixture
def project(meltano_installed: None, sandbox: SandboxProcess, tmp_path: Path) -> MeltanoProject:
    """The Meltano project pointed at a freshly reset sandbox, with its own state database."""
    dead_letters = tmp_path / "dead-letters.jsonl"
    env = {
        **os.environ,
        "MELTANO_ENVIRONMENT": "dev",
        "MELTANO_DATABASE_URI": f"sqlite:///{tmp_path / 'meltano.db'}",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "TAP_SFMC_DE_AUTH_BASE_URL": sandbox.sfmc_url,
        "TAP_SFMC_DE_TOKEN_STORE_PATH": str(tmp_path / "token.json"),
        "TARGET_INSIDER_ONE_API_BASE_URL": sandbox.insider_url,
        "TARGET_INSIDER_ONE_DEAD_LETTER_PATH": str(dead_letters),
        "TARGET_JSONL_DESTINATION_PATH": str(tmp_path / "jsonl"),
    }
    return MeltanoProject(env=env, dead_letter_path=dead_letters, workdir=tmp_path)
