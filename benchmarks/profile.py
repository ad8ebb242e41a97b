"""Where a plugin's time goes: one stage of `make bench` under py-spy, as a table of functions.

    .venv/bin/python -m benchmarks.profile [--stage target-off] [--rows 125000] [--top 40]

Stages: ``target-off`` and ``target-on`` (the target with the project mapping, phones off or
on, fed the Singer file the tap wrote) and ``tap`` (the tap alone, to a file), each against a
sandbox over HTTP on 127.0.0.1, as in ``make bench``. py-spy samples the stage's process and
its children, e.g. the target's phone worker (``--subprocesses``; ``--gil``: only samples
holding the GIL, i.e. Python work); the lines under the sample count give each process's
samples. Each sample pauses the process briefly, so its wall time is a little longer than in
``make bench``; the shares are what count. (``--nonblocking`` would not pause it, but py-spy
0.4.0 then sometimes crashes reading a code object the process is changing.) The table
gives, per function, its inclusive share (time in it and everything it called) and its self
share, in % of all processes' samples.

py-spy (pinned in requirements/dev.txt) needs ptrace, which root and most CI machines have.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from api_sandbox.testing import SandboxProcess

from benchmarks import memory, processes, project
from benchmarks.stages import Plugins, progress

STAGES = ("target-off", "target-on", "tap")
SPY_EXIT_TIMEOUT = 60  # s for py-spy to write its samples once the stage has exited
# "name (path/to/file.py:123)": the line number goes, and the path keeps only what follows
# site-packages/ or the repository, so one function is one row however many lines it has.
FRAME = re.compile(r"^(?P<name>.*) \((?P<path>.*?)(?::\d+)?\)$")
REPOSITORY_PREFIX = re.compile(r"^.*?/(?=(?:tap_sfmc_de|target_insider_one|api_sandbox)/)")
# With --subprocesses a stack starts with the process, then each child down to the sampled
# one: 'process 12:"command line";'. A command line can hold ';' (multiprocessing's spawn).
PROCESS = re.compile(r'process \d+:"(?P<command>[^"]*)";?')


@dataclass(frozen=True)
class Profile:
    """Samples per function: inclusive (on the stack) and self (at the top)."""

    samples: int
    inclusive: Counter[str]
    own: Counter[str]
    processes: Counter[str]  # samples per sampled process, by its command line


def frame_label(frame: str) -> str:
    """``name (file)`` for one py-spy frame, without its line number and install path."""
    match = FRAME.match(frame)
    if match is None:
        return frame
    path = match["path"].split("site-packages/")[-1]
    return f"{match['name']} ({REPOSITORY_PREFIX.sub('', path)})"


def aggregate(lines: Iterable[str]) -> Profile:
    """Fold py-spy's raw output (``frame;frame;... count`` per line) into a Profile."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    processes: Counter[str] = Counter()
    samples = 0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        weight = int(count)
        samples += weight
        commands = PROCESS.findall(stack)
        processes[commands[-1] if commands else "?"] += weight
        frames = [frame for frame in PROCESS.sub("", stack).split(";") if frame]
        labels = [frame_label(frame) for frame in frames]
        for label in set(labels):
            inclusive[label] += weight
        if labels:
            own[labels[-1]] += weight
    return Profile(samples, inclusive, own, processes)


def render(profile: Profile, top: int) -> str:
    """Two tables: the ``top`` functions by inclusive share, then by self share."""
    out = [f"{profile.samples:,} samples (GIL held)"]
    out += [f"- {count:,} in {command[:100]}" for command, count in profile.processes.most_common()]
    for title, counts in (("inclusive", profile.inclusive), ("self", profile.own)):
        out += ["", f"| {title} % | function |", "|---:|---|"]
        out += [
            f"| {100 * count / max(profile.samples, 1):.1f} | {label} |"
            for label, count in counts.most_common(top)
        ]
    return "\n".join(out)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=STAGES, default="target-off")
    parser.add_argument("--rows", type=int, default=125_000, help="rows of the DE")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--top", type=int, default=40, help="functions per table")
    return parser.parse_args()


def stage_argv(stage: str, plugins: Plugins) -> list[str]:
    """The stage's command line."""
    return plugins.tap() if stage == "tap" else plugins.target(phones=stage == "target-on")


def sampled_run(spy: str, argv: list[str], stdin: Path | None, raw: Path, rate: int) -> float:
    """Run the stage with py-spy attached to it (``--pid``); its wall seconds.

    Attached, not as py-spy's own child: py-spy 0.4.0 launching the command fails at its end
    ("No child process") in its default, blocking mode. py-spy writes the samples once the
    process exits.

    Raises:
        processes.StageError: The stage or py-spy failed.
    """
    with (
        stdin.open("rb") if stdin else open(os.devnull, "rb") as source,  # noqa: PTH123
        open(os.devnull, "wb") as sink,  # noqa: PTH123
    ):
        started = time.perf_counter()
        stage = subprocess.Popen(argv, stdin=source, stdout=sink, stderr=subprocess.DEVNULL)  # noqa: S603
        sampler = [spy, "record", "--subprocesses", "--gil", "-r", str(rate), "-f", "raw"]
        sampler += ["-o", str(raw)]
        spying = subprocess.Popen(  # noqa: S603
            [*sampler, "--pid", str(stage.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        code = stage.wait()
        seconds = time.perf_counter() - started
        _, spy_errors = spying.communicate(timeout=SPY_EXIT_TIMEOUT)
    if code != 0:
        raise processes.StageError(f"{argv[0]} exited {code}")
    if spying.returncode != 0 or not raw.exists():
        raise processes.StageError(f"py-spy failed: {spy_errors.decode(errors='replace')[-2000:]}")
    return seconds


def main() -> None:
    """Run the stage under py-spy once and print where its time went."""
    args = parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        sys.exit("py-spy is not installed: `make venv` installs it (requirements/dev.txt)")
    project.compile_packages()
    with (
        tempfile.TemporaryDirectory(prefix="profile-") as tmp,
        SandboxProcess(rows=args.rows, start_timeout=memory.START_TIMEOUT) as sandbox,
    ):
        work = Path(tmp)
        tap_config, target_config = project.plugin_configs(sandbox, work, args.rows)
        plugins = Plugins.write(work, tap_config, target_config)
        singer = work / "singer.jsonl"
        if args.stage != "tap":
            progress(f"the tap writes {args.rows:,} rows to a file ...")
            plugins.tap_to_file(singer)
        raw = work / "py-spy.txt"
        progress(f"{args.stage} under py-spy ...")
        stdin = None if args.stage == "tap" else singer
        seconds = sampled_run(spy, stage_argv(args.stage, plugins), stdin, raw, args.rate)
        profile = aggregate(raw.read_text(encoding="utf-8", errors="replace").splitlines())
    print(f"{args.stage}, {args.rows:,} rows: {seconds:.1f} s wall under py-spy")
    print(render(profile, args.top))


if __name__ == "__main__":
    main()
