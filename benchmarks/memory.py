"""Peak RSS of each plugin in one run over a big DE, to compare with a small one.

The big run is the same ``tap | target`` pipe as the small one (project mapping, phones
on, zero latency), with ``max_pages_per_run`` raised so that one run reads every row; each
side's peak RSS is its own ``ru_maxrss`` (``os.wait4``). The sandbox generates and loads
its rows into SQLite at start, eagerly (``api_sandbox.generator`` is deterministic but not
lazy): that start is timed and printed, and it is not part of either plugin's figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from api_sandbox.testing import SandboxProcess

from benchmarks import project
from benchmarks.processes import PipeMeasured, high_water_mb
from benchmarks.stages import Plugins, progress

START_TIMEOUT = 900  # seconds: a million generated rows take a while on a busy machine


@dataclass(frozen=True)
class BigRun:
    """The big DE's pipe run and what starting its sandbox cost."""

    rows: int
    sandbox_start_seconds: float
    sandbox_rss_mb: float  # the sandbox's own peak, after the run (its rows live in SQLite)
    pipe: PipeMeasured


def run(rows: int, work: Path) -> BigRun:
    """Start a sandbox with ``rows`` rows and run the pipe once through all of them."""
    work.mkdir(exist_ok=True)
    progress(f"starting a sandbox with {rows:,} rows (generated and loaded at start) ...")
    started = time.perf_counter()
    with SandboxProcess(rows=rows, start_timeout=START_TIMEOUT) as sandbox:
        start_seconds = time.perf_counter() - started
        progress(f"  sandbox ready in {start_seconds:.1f} s")
        plugins = Plugins.write(
            work,
            sandbox.tap_config(
                token_store_path=str(work / "token.json"), max_pages_per_run=project.pages_for(rows)
            ),
            sandbox.target_config(
                dead_letter_path=str(work / "dead.jsonl"), **project.project_mapping()
            ),
        )
        progress(f"tap | target over {rows:,} rows (peak RSS of each side) ...")
        pipe = plugins.pipe(f"tap | target {rows} rows")
        progress(
            f"  {pipe.seconds:.1f} s; tap {pipe.producer.peak_rss_mb:.0f} MB, "
            f"target {pipe.consumer.peak_rss_mb:.0f} MB"
        )
        assert sandbox.proc is not None  # noqa: S101 - running inside the with block
        sandbox_rss = high_water_mb(sandbox.proc.pid) or 0.0
    return BigRun(rows, start_seconds, sandbox_rss, pipe)
