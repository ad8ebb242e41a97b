"""Run the plugins as child processes and measure each one from outside.

Wall time is the parent's clock around the whole process; peak RSS is the child's own
``ru_maxrss`` as ``os.wait4`` reports it for that one pid (not RUSAGE_CHILDREN summed over
everything the benchmark ever started). Standard error goes to a file, shown when a
process fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class StageError(RuntimeError):
    """A measured process exited non-zero."""


@dataclass(frozen=True)
class Measured:
    """What one process cost."""

    seconds: float
    peak_rss_mb: float


def _reap(proc: subprocess.Popen[bytes]) -> float:
    """Wait for ``proc`` with wait4; return its peak RSS in MB (Linux reports KiB)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024


def _check(label: str, proc: subprocess.Popen[bytes], stderr_path: Path) -> None:
    if proc.returncode != 0:
        tail = stderr_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise StageError(f"{label} exited {proc.returncode}; its stderr ends:\n{tail}")


def _open(path: Path | None, mode: str) -> IO[bytes] | int:
    return subprocess.DEVNULL if path is None else path.open(mode)


def run(
    label: str,
    argv: list[str],
    work: Path,
    *,
    stdin: Path | None = None,
    stdout: Path | None = None,
    env: dict[str, str] | None = None,
) -> Measured:
    """Run one process to completion and measure it.

    Args:
        label: name in progress lines and errors.
        argv: the command.
        work: scratch directory (stderr file).
        stdin: file fed to standard input (none: /dev/null).
        stdout: file standard output is written to (none: /dev/null).
        env: environment (default: inherited).

    Returns:
        Wall time and peak RSS of that process.

    Raises:
        StageError: when it exits non-zero.
    """
    stderr_path = work / f"{label.replace(' ', '_')}.stderr"
    source, sink = _open(stdin, "rb"), _open(stdout, "wb")
    try:
        with stderr_path.open("wb") as stderr:
            started = time.perf_counter()
            proc = subprocess.Popen(  # noqa: S603 - argv built by the benchmark
                argv, stdin=source, stdout=sink, stderr=stderr, cwd=ROOT, env=env
            )
            rss = _reap(proc)
            seconds = time.perf_counter() - started
    finally:
        for handle in (source, sink):
            if not isinstance(handle, int):
                handle.close()
    _check(label, proc, stderr_path)
    return Measured(seconds, rss)


@dataclass(frozen=True)
class PipeMeasured:
    """What a ``producer | consumer`` pipe cost: one wall time, each side's peak RSS."""

    seconds: float
    producer: Measured
    consumer: Measured


def pipe(
    label: str,
    producer: list[str],
    consumer: list[str],
    work: Path,
    env: dict[str, str] | None = None,
) -> PipeMeasured:
    """Run ``producer | consumer`` (consumer's stdout to /dev/null) and measure both.

    Raises:
        StageError: when either side exits non-zero.
    """
    paths = [work / f"{label.replace(' ', '_')}.{side}.stderr" for side in ("left", "right")]
    with paths[0].open("wb") as left_err, paths[1].open("wb") as right_err:
        started = time.perf_counter()
        left = subprocess.Popen(  # noqa: S603 - argv built by the benchmark
            producer, stdout=subprocess.PIPE, stderr=left_err, cwd=ROOT, env=env
        )
        assert left.stdout is not None  # noqa: S101 - stdout=PIPE above
        right = subprocess.Popen(  # noqa: S603 - argv built by the benchmark
            consumer,
            stdin=left.stdout,
            stdout=subprocess.DEVNULL,
            stderr=right_err,
            cwd=ROOT,
            env=env,
        )
        left.stdout.close()  # the consumer holds the only read end: EOF reaches it
        left_rss = _reap(left)
        left_seconds = time.perf_counter() - started
        right_rss = _reap(right)
        seconds = time.perf_counter() - started
    _check(f"{label} (left side)", left, paths[0])
    _check(f"{label} (right side)", right, paths[1])
    return PipeMeasured(seconds, Measured(left_seconds, left_rss), Measured(seconds, right_rss))
