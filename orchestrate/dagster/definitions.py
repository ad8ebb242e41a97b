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

from dagster import Definitions, JobDefinition, ScheduleDefinition, multiprocess_executor
from dagster_meltano import load_jobs_from_meltano_project

PROJECT_ROOT = os.environ.get("MELTANO_PROJECT_ROOT", str(Path(__file__).resolve().parents[2]))
MAX_CONCURRENT = int(os.environ.get("FLEET_MAX_CONCURRENT", "4"))

_loaded = load_jobs_from_meltano_project(PROJECT_ROOT)

defs = Definitions(
    jobs=[item for item in _loaded if isinstance(item, JobDefinition)],
    schedules=[item for item in _loaded if isinstance(item, ScheduleDefinition)],
    executor=multiprocess_executor.configured({"max_concurrent": MAX_CONCURRENT}),
)
