"""The measured stages: each plugin alone, its anchor, the pipe and ``meltano run``.

Every stage is a whole process (or a shell-style pipe of two) measured from outside
(:mod:`benchmarks.processes`), against one sandbox over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import processes, project
from benchmarks.processes import Measured, PipeMeasured


def progress(message: str) -> None:
    """A progress line on stderr (the table goes to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Repeated:
    """A stage run several times: medians, and how many runs they are the median of.

    ``cpu_seconds`` is the stage's own processes' CPU; ``sandbox_cpu_seconds`` what the
    sandbox serving it spent meanwhile, on the same two cores.
    """

    seconds: float
    runs: int
    peak_rss_mb: float
    cpu_seconds: float = 0.0
    sandbox_cpu_seconds: float = 0.0


def repeated(
    label: str,
    once: Callable[[], Measured],
    repeat: int,
    single_run_limit: float,
    sandbox_pid: int | None = None,
) -> Repeated:
    """Run ``once`` up to ``repeat`` times and take the median wall time.

    A stage whose first run took longer than ``single_run_limit`` seconds is not repeated,
    so the whole benchmark stays within its time budget on a slow branch; the table says
    how many runs each figure is the median of.
    """
    results = []
    sandbox_cpu = []
    for number in range(1, repeat + 1):
        before = processes.cpu_seconds(sandbox_pid) if sandbox_pid else 0.0
        result = once()
        sandbox_cpu.append(processes.cpu_seconds(sandbox_pid) - before if sandbox_pid else 0.0)
        results.append(result)
        progress(
            f"  {label}: run {number}: {result.seconds:.1f} s, {result.peak_rss_mb:.0f} MB, "
            f"CPU {result.cpu_seconds:.1f} s (sandbox {sandbox_cpu[-1]:.1f} s)"
        )
        if result.seconds > single_run_limit:
            break
    return Repeated(
        statistics.median(r.seconds for r in results),
        len(results),
        max(r.peak_rss_mb for r in results),
        statistics.median(r.cpu_seconds for r in results),
        statistics.median(sandbox_cpu),
    )


@dataclass
class Plugins:
    """Config files and commands of both plugins against one sandbox."""

    work: Path
    tap_config: Path
    target_phones_on: Path
    target_phones_off: Path

    @classmethod
    def write(
        cls, work: Path, tap_config: dict[str, Any], target_config: dict[str, Any]
    ) -> Plugins:
        """Write the config files: the tap's, the target's with phones on and off."""
        return cls(
            work,
            project.write_config(work / "tap.json", tap_config),
            project.write_config(work / "target-phones-on.json", target_config),
            project.write_config(
                work / "target-phones-off.json", project.phones_off(target_config)
            ),
        )

    def tap(self) -> list[str]:
        """The tap's command line."""
        return [project.TAP, "--config", str(self.tap_config)]

    def target(self, phones: bool = True) -> list[str]:
        """The target's command line, with the project mapping, phones on or off."""
        config = self.target_phones_on if phones else self.target_phones_off
        return [project.TARGET, "--config", str(config)]

    def tap_to_file(self, singer: Path) -> Measured:
        """``tap-sfmc-de > singer``."""
        return processes.run("tap alone", self.tap(), self.work, stdout=singer)

    def tap_start_up(self) -> Measured:
        """``tap-sfmc-de --about --format json``: the interpreter and a sync's imports alone."""
        argv = [project.TAP, "--about", "--format", "json"]
        return processes.run("tap start-up", argv, self.work)

    def target_from_file(self, singer: Path, *, phones: bool) -> Measured:
        """``target-insider-one < singer``."""
        label = f"target phones {'on' if phones else 'off'}"
        return processes.run(label, self.target(phones), self.work, stdin=singer)

    def anchor_tap(self, singer: Path, load_only: bool = False) -> Measured:
        """The anchor tap: full sync to /dev/null, or only loading its records."""
        argv = [sys.executable, "-m", "benchmarks.anchor_tap", str(singer)]
        label = "anchor tap load-only" if load_only else "anchor tap"
        return processes.run(label, [*argv, "--load-only"] if load_only else argv, self.work)

    def anchor_target(self, singer: Path) -> Measured:
        """The do-nothing BatchSink target fed the Singer file."""
        argv = [sys.executable, "-m", "benchmarks.anchor_target"]
        return processes.run("anchor target", argv, self.work, stdin=singer)

    def pipe(self, label: str = "tap | target") -> PipeMeasured:
        """``tap-sfmc-de | target-insider-one`` (project mapping, phones on)."""
        return processes.pipe(label, self.tap(), self.target(phones=True), self.work)


def meltano_install(env: dict[str, str], work: Path) -> Measured:
    """``meltano install`` from the project's own plugin definitions (no Hub, no internet)."""
    return processes.run("meltano install", [project.MELTANO, "install"], work, env=env)


def meltano_run(env: dict[str, str], work: Path, label: str = "meltano run") -> Measured:
    """``meltano run tap-sfmc-de target-insider-one`` (state in the env's SQLite DB)."""
    argv = [project.MELTANO, "run", "tap-sfmc-de", "target-insider-one"]
    return processes.run(label, argv, work, env=env)
