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

import os
from pathlib import Path
from typing import Any

from dagster import Definitions, JobDefinition, ScheduleDefinition, multiprocess_executor
from dagster_meltano import load_jobs_from_meltano_project

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


_loaded = _unique_by_name(load_jobs_from_meltano_project(PROJECT_ROOT))

defs = Definitions(
    jobs=[item for item in _loaded if isinstance(item, JobDefinition)],
    schedules=[item for item in _loaded if isinstance(item, ScheduleDefinition)],
    executor=multiprocess_executor.configured({"max_concurrent": MAX_CONCURRENT}),
)
