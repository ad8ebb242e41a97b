"""Dagster definitions for this Meltano project: its jobs and schedules as Dagster's.

Load with `dagster definitions validate -f orchestrate/dagster/definitions.py` or run a job with
`dagster job execute -f orchestrate/dagster/definitions.py -j sfmc_fleet`. dagster-meltano reads
`meltano job list` / `meltano schedule list`, so every job in meltano.yml (and in the generated
orchestrate/fleet.meltano.yml) becomes a Dagster job and every schedule a Dagster schedule:
`sfmc-to-insider` -> `sfmc_to_insider`, `sfmc-fleet` -> `sfmc_fleet` (one op per DE, no
dependencies between them, so they run in parallel and one failing DE does not stop the others).

The orchestrator lives in its own virtualenv (.venv-dagster); `meltano` must be on PATH
(the project's .venv/bin). Environment:
    MELTANO_PROJECT_ROOT    the Meltano project (default: this repository)
    FLEET_MAX_CONCURRENT    Meltano runs at once within one Dagster run (default 4): the
                            concurrency limit toward SFMC, one token and one rowset query each
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from dagster import Definitions, JobDefinition, ScheduleDefinition, multiprocess_executor
from dagster_meltano import MeltanoResource

# dagster-meltano's resource runs `meltano` in MELTANO_PROJECT_ROOT (else the current directory).
PROJECT_ROOT = os.environ.setdefault(
    "MELTANO_PROJECT_ROOT", str(Path(__file__).resolve().parents[2])
)
MAX_CONCURRENT = int(os.environ.get("FLEET_MAX_CONCURRENT", "4"))


def _unique_by_name(items: list[Any]) -> list[Any]:
    """The first definition of each name.

    Meltano 4.4.1 lists the jobs and schedules of included files (orchestrate/*.meltano.yml)
    twice when an environment is active (`MELTANO_ENVIRONMENT=dev meltano job list`), and
    Dagster rejects duplicate names.
    """
    seen: dict[str, Any] = {}
    for item in items:
        seen.setdefault(item.name, item)
    return list(seen.values())


def _meltano_json(*args: str) -> Any:
    """The JSON answer of one `meltano ... --format=json` command in the project."""
    result = subprocess.run(  # noqa: S603 - fixed argv
        ["meltano", *args, "--format=json"],  # noqa: S607 - meltano from PATH, as dagster-meltano
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"meltano {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


def _load_project() -> list[Any]:
    """The project's jobs and schedules as Dagster definitions, asking `meltano` once per run.

    dagster-meltano asks `meltano job list` and `meltano schedule list` at the same time, and
    on a new system database both then create its tables and one fails; here they run one
    after the other. Every op of a run executes in a child process that loads this file
    again: the first process keeps the answer in the environment the children inherit
    (saving two CLI calls, seconds of CPU, per DE) and presets dagster-meltano's singleton
    resource with it.
    """
    cached = os.environ.get(_CACHE_ENV)
    listing = json.loads(cached) if cached else None
    if listing is None:
        listing = {
            "jobs": _meltano_json("job", "list")["jobs"],
            "schedules": _meltano_json("schedule", "list")["schedules"],
        }
        os.environ[_CACHE_ENV] = json.dumps(listing)
    resource = MeltanoResource(project_dir=PROJECT_ROOT, meltano_bin="meltano")
    resource.__dict__["meltano_yaml"] = listing  # the slot of its cached_property
    return _unique_by_name(list(resource.jobs))


_CACHE_ENV = "SFMC_DAGSTER_MELTANO_PROJECT"
_loaded = _load_project()

defs = Definitions(
    jobs=[item for item in _loaded if isinstance(item, JobDefinition)],
    schedules=[item for item in _loaded if isinstance(item, ScheduleDefinition)],
    # forkserver: op processes fork from one that has imported dagster already.
    executor=multiprocess_executor.configured(
        {"max_concurrent": MAX_CONCURRENT, "start_method": {"forkserver": {}}}
    ),
)
