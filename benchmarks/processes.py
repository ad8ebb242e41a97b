"""Run the plugins as child processes and measure each one from outside.

Wall time is the parent's clock around the whole process. Peak RSS is the child's own
high-water mark, ``VmHWM`` in ``/proc/<pid>/status``, polled every few milliseconds while
it runs (the last reading before it exits is its peak, give or take the last poll). Not
``ru_maxrss`` from ``os.wait4``: Linux carries the parent's high-water mark into a child
across fork and exec, so every child of this benchmark (which holds a Singer file in
memory) would report at least the benchmark's own size. Standard error goes to a file,
shown when a process fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
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
    """What one process cost: wall, peak RSS and CPU (user + system, its children's too)."""

    seconds: float
    peak_rss_mb: float
    cpu_seconds: float = 0.0


POLL_SECONDS = 0.01


def high_water_mb(pid: int) -> float | None:
    """The process's peak RSS so far (``VmHWM``), in MB; None once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return None  # a zombie: its memory is gone


class PeakRss:
    """Polls one child's ``VmHWM`` in a thread until it exits; ``mb`` is the last reading."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.mb = 0.0
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while (reading := high_water_mb(self.pid)) is not None:
            self.mb = max(self.mb, reading)
            time.sleep(POLL_SECONDS)

    def wait(self, proc: subprocess.Popen[bytes]) -> tuple[float, float]:
        """Wait for the process to exit: its peak RSS in MB and its CPU seconds.

        CPU comes from ``wait4``'s rusage (user + system), which includes the children it
        waited for (the target's phone worker; ``meltano run``'s tap and target). Only its
        ``ru_maxrss`` is unreliable (see the module docstring).
        """
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        self._thread.join()
        return self.mb, usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stderr_path(work: Path, label: str, suffix: str = "") -> Path:
    """A file name for a stage's stderr, made of the label's word characters."""
    name = re.sub(r"\W+", "_", label).strip("_")
    return work / f"{name}{suffix}.stderr"


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
    stderr_path = _stderr_path(work, label)
    source, sink = _open(stdin, "rb"), _open(stdout, "wb")
    try:
        with stderr_path.open("wb") as stderr:
            started = time.perf_counter()
            proc = subprocess.Popen(  # noqa: S603 - argv built by the benchmark
                argv, stdin=source, stdout=sink, stderr=stderr, cwd=ROOT, env=env
            )
            rss, cpu = PeakRss(proc.pid).wait(proc)
            seconds = time.perf_counter() - started
    finally:
        for handle in (source, sink):
            if not isinstance(handle, int):
                handle.close()
    _check(label, proc, stderr_path)
    return Measured(seconds, rss, cpu)


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
    paths = [_stderr_path(work, label, f".{side}") for side in ("left", "right")]
    with paths[0].open("wb") as left_err, paths[1].open("wb") as right_err:
        started = time.perf_counter()
        left = subprocess.Popen(  # noqa: S603 - argv built by the benchmark
            producer, stdout=subprocess.PIPE, stderr=left_err, cwd=ROOT, env=env
        )
        assert left.stdout is not None  # noqa: S101 - stdout=PIPE above
        left_peak = PeakRss(left.pid)
        right = subprocess.Popen(  # noqa: S603 - argv built by the benchmark
            consumer,
            stdin=left.stdout,
            stdout=subprocess.DEVNULL,
            stderr=right_err,
            cwd=ROOT,
            env=env,
        )
        right_peak = PeakRss(right.pid)
        left.stdout.close()  # the consumer holds the only read end: EOF reaches it
        left_rss, left_cpu = left_peak.wait(left)
        left_seconds = time.perf_counter() - started
        right_rss, right_cpu = right_peak.wait(right)
        seconds = time.perf_counter() - started
    _check(f"{label} (left side)", left, paths[0])
    _check(f"{label} (right side)", right, paths[1])
    return PipeMeasured(
        seconds,
        Measured(left_seconds, left_rss, left_cpu),
        Measured(seconds, right_rss, right_cpu),
    )
