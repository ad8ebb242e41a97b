"""Run a Dagster job of this project (orchestrate/dagster/definitions.py) from the tests.

Dagster lives in its own virtualenv and drives `meltano` through its CLI, so the tests run
`dagster job execute` as a user would, with the project's .venv/bin on PATH and a temporary
DAGSTER_HOME (run storage, logs), and read the outcome from the sandbox and Meltano's state.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import MELTANO, ROOT, MeltanoProject

DEFINITIONS = ROOT / "orchestrate" / "dagster" / "definitions.py"


@dataclass
class DagsterRun:
    """One `dagster job execute`: exit code, output, wall time."""

    returncode: int
    output: str
    seconds: float


def execute_job(
    dagster: Path,
    project: MeltanoProject,
    job: str,
    *,
    ops: list[str] | None = None,
    max_concurrent: int = 4,
) -> DagsterRun:
    """Run a Dagster job (or only `ops` of it) once, in the foreground, in the project's env."""
    home = project.workdir / "dagster-home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    env = {
        **project.env,
        "PATH": f"{Path(MELTANO).parent}:{project.env.get('PATH', '')}",
        "DAGSTER_HOME": str(home),
        "MELTANO_PROJECT_ROOT": str(ROOT),
        "FLEET_MAX_CONCURRENT": str(max_concurrent),
    }
    selection = ["--op-selection", ",".join(ops)] if ops else []
    started = time.monotonic()
    result = subprocess.run(
        [dagster, "job", "execute", "-f", DEFINITIONS, "-j", job, *selection], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    output = f"{result.stdout}\n{result.stderr}"
    project.logs.append(f"$ dagster job execute -j {job}\n{output}")
    return DagsterRun(result.returncode, output, time.monotonic() - started)
