"""`make bench`: issue 10's figures, every one measured in the same run, in one table.

    .venv/bin/python -m benchmarks.bench [--rows 125000] [--big-rows 1000000] [--repeat 3]

Bounds (the unavoidable work alone), anchors (minimal singer-sdk plugins at SDK defaults),
the plugins alone, piped and under ``meltano run``, the request counts the sandbox saw, a
latency scenario and peak RSS at two DE sizes. Everything runs against the sandbox over
HTTP on 127.0.0.1, with no internet and no Meltano Hub. The machine is shared and noisy:
compare the ratios within one run, not absolute figures across runs. Progress lines go to
stderr, the table and the machine to stdout.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from api_sandbox.testing import SandboxProcess

from benchmarks import bounds, latency, machine, memory, project, singer_file, stages
from benchmarks.sandbox_counts import Counts
from benchmarks.stages import Plugins, Repeated, progress
from benchmarks.table import Row, rate, render, runs_label, verdict

TAP_VS_ANCHOR_GOAL = 1.0
PHONES_OFF_VS_ANCHOR_GOAL = 4.0
PHONES_ON_VS_BOUND_GOAL = 0.75
MELTANO_RUN_GOAL = 25_000  # records/s
LATENCY_GOAL = 1.3  # wall / bound
RSS_LIMIT_MB = 150
RSS_FLAT = 1.25  # "flat": the big run's peak at most this many times the small run's


def parse_args() -> argparse.Namespace:
    """Command-line options (defaults: issue 10's sizes and latencies)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=125_000, help="rows of the main DE")
    parser.add_argument("--big-rows", type=int, default=1_000_000, help="rows of the RSS run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument(
        "--single-run-limit",
        type=float,
        default=20.0,
        help="a process stage whose first run takes longer (s) is run once (time budget)",
    )
    parser.add_argument("--rowset-latency", type=float, default=1.5, help="s per rowset request")
    parser.add_argument("--upsert-latency", type=float, default=0.3, help="s per upsert")
    return parser.parse_args()


def in_process(repeat: int, measure: Callable[[], float]) -> float:
    """Median of ``repeat`` in-process timings (cheap: always repeated)."""
    return statistics.median(measure() for _ in range(repeat))


@dataclass
class Bench:
    """One benchmark run: options, scratch directory and the rows measured so far."""

    args: argparse.Namespace
    work: Path
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    small_rss: tuple[float, float] = (0.0, 0.0)  # peak MB of tap, target in the pipe
    sandbox_pid: int | None = None  # the main sandbox, whose CPU each stage shares
    cpu_lines: list[tuple[int, str]] = field(default_factory=list)  # (row, account)

    def stage(self, label: str, once: Callable[[], stages.Measured]) -> Repeated:
        """A process stage, repeated within the time budget."""
        progress(f"{label} ...")
        return stages.repeated(
            label, once, self.args.repeat, self.args.single_run_limit, self.sandbox_pid
        )

    def cpu(self, number: int, what: str, stage: Repeated) -> None:
        """A line of the CPU account: where a stage's wall time went on the two cores."""
        busy = (stage.cpu_seconds + stage.sandbox_cpu_seconds) / stage.seconds
        account = (
            f"{number}: {what} {stage.cpu_seconds:.1f} s + sandbox "
            f"{stage.sandbox_cpu_seconds:.1f} s CPU in {stage.seconds:.1f} s wall "
            f"({busy:.2f} of 2 cores busy)"
        )
        self.cpu_lines.append((number, account))

    def note(self, text: str) -> None:
        """A line printed under the table (how a figure was computed)."""
        self.notes.append(text)

    def add(self, *rows: Row) -> None:
        """Record rows of the table."""
        self.rows.extend(rows)

    def main_sandbox(self) -> None:
        """Rows 1-11: everything measured against the main DE."""
        args, work = self.args, self.work
        progress(f"starting a sandbox with {args.rows:,} rows ...")
        with SandboxProcess(rows=args.rows, start_timeout=memory.START_TIMEOUT) as sandbox:
            self.sandbox_pid = sandbox.proc.pid if sandbox.proc else None
            tap_config, target_config = project.plugin_configs(sandbox, work, args.rows)
            plugins = Plugins.write(work, tap_config, target_config)
            singer = work / "singer.jsonl"
            tap = self.stage("tap-sfmc-de alone > file", lambda: plugins.tap_to_file(singer))
            # Row 4 is measured like row 3: the tap's own start-up (interpreter, imports)
            # is subtracted, as the anchor's load-only run is.
            start_up = self.stage("tap-sfmc-de --about (start-up)", plugins.tap_start_up)
            records = singer_file.count_records(singer)
            self.cpu(4, "tap (with its start-up)", tap)
            progress(f"  the tap wrote {records:,} records")
            self.bounds_and_anchors(plugins, singer, records, tap, start_up)
            self.pipe_and_meltano(sandbox, plugins, records)
            self.latency(sandbox, plugins, tap_config, target_config)

    def bounds(self, singer: Path, records: int) -> tuple[float, float]:
        """Seconds of the two bounds: json.loads of every line, phonenumbers of every phone."""
        repeat = self.args.repeat
        mapping = project.project_mapping()
        progress("bounds: json.loads and phonenumbers, in-process ...")
        json_seconds = in_process(repeat, lambda: bounds.json_loads_seconds(singer))
        stream = singer_file.read_stream(singer)
        phones = bounds.phone_values(stream.records, project.phone_field(mapping))
        region = mapping.get("phone_default_region")
        phone_seconds = in_process(repeat, lambda: bounds.phonenumbers_seconds(phones, region))
        self.note(
            f"2: {len(phones):,} phone values of {records:,} records, region {region}, "
            "valid ones formatted; the rate is per record, like the target's"
        )
        return json_seconds, phone_seconds

    def bounds_and_anchors(
        self, plugins: Plugins, singer: Path, records: int, tap: Repeated, start_up: Repeated
    ) -> None:
        """Rows 1-7: bounds, anchors and each plugin alone on the same Singer file."""
        repeat = self.args.repeat
        json_seconds, phone_seconds = self.bounds(singer, records)
        anchor_full = self.stage("anchor tap", lambda: plugins.anchor_tap(singer))
        anchor_load = self.stage(
            "anchor tap --load-only", lambda: plugins.anchor_tap(singer, load_only=True)
        )
        anchor_target = self.stage("anchor target", lambda: plugins.anchor_target(singer))
        phones_off = self.stage(
            "target-insider-one phones off", lambda: plugins.target_from_file(singer, phones=False)
        )
        phones_on = self.stage(
            "target-insider-one phones on", lambda: plugins.target_from_file(singer, phones=True)
        )

        self.cpu(3, "anchor tap (with its start and load)", anchor_full)
        self.cpu(5, "anchor target", anchor_target)
        self.cpu(6, "target (phones off)", phones_off)
        self.cpu(7, "target (phones on, with its phone worker)", phones_on)
        anchor_seconds = max(anchor_full.seconds - anchor_load.seconds, 1e-9)
        anchor_runs = min(anchor_full.runs, anchor_load.runs)
        tap_seconds = max(tap.seconds - start_up.seconds, 1e-9)
        tap_runs = min(tap.runs, start_up.runs)
        tap_ratio = anchor_seconds / tap_seconds
        off_ratio = anchor_target.seconds / phones_off.seconds
        on_ratio = phone_seconds / phones_on.seconds
        self.note(
            f"3: anchor = wall {anchor_full.seconds:.1f} s - load-only wall "
            f"{anchor_load.seconds:.1f} s (interpreter, imports, loading the file)"
        )
        self.note(
            f"4: tap = wall {tap.seconds:.1f} s - start-up {start_up.seconds:.1f} s "
            f"(`tap-sfmc-de --about --format json`: interpreter, a sync's imports); with its "
            f"start-up the tap ran at {rate(records, tap.seconds)} "
            f"({anchor_seconds / tap.seconds:.2f}x anchor 3)"
        )
        self.add(
            Row(1, "bound: json.loads of every Singer line (in-process)",
                rate(records, json_seconds), runs_label(repeat)),
            Row(2, "bound: phonenumbers parse + is_valid + format E.164 (in-process)",
                rate(records, phone_seconds), runs_label(repeat)),
            Row(3, "anchor: minimal singer-sdk tap from memory, SDK defaults",
                rate(records, anchor_seconds), runs_label(anchor_runs)),
            Row(4, "tap-sfmc-de alone, zero latency, to a file",
                rate(records, tap_seconds), runs_label(tap_runs), f"{tap_ratio:.2f}x anchor 3",
                f">= {TAP_VS_ANCHOR_GOAL:g}x anchor", verdict(tap_ratio >= TAP_VS_ANCHOR_GOAL)),
            Row(5, "anchor: singer-sdk target, do-nothing BatchSink, SDK defaults",
                rate(records, anchor_target.seconds), runs_label(anchor_target.runs)),
            Row(6, "target-insider-one, project mapping, phones off",
                rate(records, phones_off.seconds), runs_label(phones_off.runs),
                f"{off_ratio:.2f}x anchor 5", f">= {PHONES_OFF_VS_ANCHOR_GOAL:g}x anchor",
                verdict(off_ratio >= PHONES_OFF_VS_ANCHOR_GOAL)),
            Row(7, "target-insider-one, project mapping, phones on",
                rate(records, phones_on.seconds), runs_label(phones_on.runs),
                f"{on_ratio:.2f}x bound 2", f">= {PHONES_ON_VS_BOUND_GOAL:g}x bound",
                verdict(on_ratio >= PHONES_ON_VS_BOUND_GOAL)),
        )  # fmt: skip

    def pipe_and_meltano(self, sandbox: SandboxProcess, plugins: Plugins, records: int) -> None:
        """Rows 8-10: the pipe, ``meltano run`` and the requests of a first and a quiet run."""
        args, work = self.args, self.work
        pipes = []

        def pipe_once() -> stages.Measured:
            pipes.append(plugins.pipe())
            last = pipes[-1]
            cpu = last.producer.cpu_seconds + last.consumer.cpu_seconds
            return stages.Measured(last.seconds, last.consumer.peak_rss_mb, cpu)

        pipe = self.stage("tap | target", pipe_once)
        self.cpu(8, "tap + target", pipe)
        self.small_rss = (
            max(p.producer.peak_rss_mb for p in pipes),
            max(p.consumer.peak_rss_mb for p in pipes),
        )
        urls = (sandbox.sfmc_url, sandbox.insider_url)
        max_pages = project.pages_for(args.rows)
        progress("meltano install (the project's plugin definitions) ...")
        stages.meltano_install(project.meltano_env(urls, work, max_pages), work)
        first_runs: list[Counts] = []
        envs = []

        def meltano_once() -> stages.Measured:
            # A fresh state DB each time, so every repetition is a first run.
            run_work = work / f"meltano-{len(envs)}"
            run_work.mkdir()
            envs.append(project.meltano_env(urls, run_work, max_pages))
            before = Counts.of(sandbox)
            measured = stages.meltano_run(envs[-1], run_work)
            first_runs.append(Counts.of(sandbox) - before)
            return measured

        melt = self.stage("meltano run (first run, empty state)", meltano_once)
        self.cpu(9, "meltano with its tap and target", melt)
        progress("meltano run again (quiet: nothing changed) ...")
        before = Counts.of(sandbox)
        quiet_run = stages.meltano_run(envs[0], work / "meltano-0", "meltano run quiet")
        quiet = Counts.of(sandbox) - before
        self.note(
            f"9: the quiet run (nothing new) took {quiet_run.seconds:.1f} s wall, "
            f"{quiet_run.cpu_seconds:.1f} s CPU: Meltano's and both plugins' start and end "
            f"alone, so {records:,} rows in one run cannot beat "
            f"{records / quiet_run.seconds:,.0f} rec/s here"
        )
        first = first_runs[0]
        cap = max_pages
        batch = int(project.configured(project.TARGET, {}, "batch_size_rows", 1000))
        users = first.users_accepted + first.users_rejected
        self.note(
            f"10: {users:,} users sent in the first run's upserts, at least "
            f"{-(-users // batch)} requests at batch_size_rows {batch}; "
            f"the quiet run sent {quiet.upsert_requests} upserts"
        )
        self.add(
            Row(8, "tap piped into target (shell pipe), zero latency, phones on",
                rate(records, pipe.seconds), runs_label(pipe.runs)),
            Row(9, "meltano run tap-sfmc-de target-insider-one, zero latency",
                rate(records, melt.seconds), runs_label(melt.runs), "-",
                f">= {MELTANO_RUN_GOAL:,} rec/s",
                verdict(records / melt.seconds >= MELTANO_RUN_GOAL)),
            Row(10, "rowset requests, first meltano run (sandbox counter)",
                f"{first.rowset_requests} requests", "1 run", "-",
                f"<= max_pages_per_run ({cap})", verdict(first.rowset_requests <= cap)),
            Row(10, "rowset requests, quiet second meltano run (sandbox counter)",
                f"{quiet.rowset_requests} requests", "1 run", "-",
                f"<= max_pages_per_run ({cap})", verdict(quiet.rowset_requests <= cap)),
            Row(10, "upsert requests, first meltano run (sandbox counter)",
                f"{first.upsert_requests} requests", "1 run"),
        )  # fmt: skip

    def latency(
        self, sandbox: SandboxProcess, plugins: Plugins, tap_config: dict, target_config: dict
    ) -> None:
        """Row 11: the pipe behind latency, wall vs the sequential sum and vs the bound."""
        args = self.args
        progress(
            f"tap | target behind {args.rowset_latency} s per rowset request and "
            f"{args.upsert_latency} s per upsert ..."
        )
        result = latency.run(
            sandbox,
            plugins,
            tap_config,
            target_config,
            rowset_seconds=args.rowset_latency,
            upsert_seconds=args.upsert_latency,
        )
        counts = result.counts
        ratio = result.seconds / result.bound_seconds if result.bound_seconds else float("inf")
        progress(f"  {result.seconds:.1f} s wall, bound {result.bound_seconds:.1f} s")
        self.note(
            f"11: sequential = {counts.rowset_requests} rowset requests x "
            f"{args.rowset_latency} s + {counts.upsert_requests} upserts x "
            f"{args.upsert_latency} s = {result.sequential_seconds:.1f} s; bound = max(rowset "
            f"/ page_concurrency {result.page_concurrency}, upserts / max_concurrent_requests "
            f"{result.upsert_concurrency}) = {result.bound_seconds:.1f} s"
        )
        self.add(
            Row(11, f"latency {args.rowset_latency} s/rowset, {args.upsert_latency} s/upsert: "
                    "tap piped into target, wall",
                f"{result.seconds:.1f} s", "1 run",
                f"{result.seconds / result.sequential_seconds:.2f}x sequential, "
                f"{ratio:.2f}x bound",
                f"<= {LATENCY_GOAL:g}x bound", verdict(ratio <= LATENCY_GOAL)),
        )  # fmt: skip

    def memory(self) -> None:
        """Row 12: peak RSS of each plugin at the main and the big DE size."""
        args = self.args
        big = memory.run(args.big_rows, self.work / "big")
        self.note(
            f"12: the {args.big_rows:,}-row run took {big.pipe.seconds:.0f} s; its sandbox "
            f"took {big.sandbox_start_seconds:.0f} s to start (rows generated and loaded into "
            f"SQLite eagerly; sandbox peak RSS {big.sandbox_rss_mb:.0f} MB), not in any figure"
        )
        for name, small, large in (
            ("tap", self.small_rss[0], big.pipe.producer.peak_rss_mb),
            ("target", self.small_rss[1], big.pipe.consumer.peak_rss_mb),
        ):
            growth = large / small
            self.add(
                Row(12, f"peak RSS of the {name} (tap piped into target), "
                        f"{args.rows:,} -> {args.big_rows:,} rows in one run",
                    f"{small:.0f} -> {large:.0f} MB", "1 run each", f"{growth:.2f}x",
                    f"flat (<= {RSS_FLAT:g}x), <= {RSS_LIMIT_MB} MB",
                    verdict(growth <= RSS_FLAT and large <= RSS_LIMIT_MB)),
            )  # fmt: skip


def main() -> None:
    """Measure everything, then print the table and the machine."""
    args = parse_args()
    described = machine.describe()
    project.compile_packages()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        bench = Bench(args, Path(tmp))
        bench.main_sandbox()
        bench.memory()
    total = time.perf_counter() - started
    print()
    print(render(bench.rows))
    print()
    for note in bench.notes:
        print(f"- {note}")
    print()
    print("CPU account (median run; the sandbox stands in for both APIs on the same 2 cores):")
    for _, line in sorted(bench.cpu_lines):
        print(f"- {line}")
    print(described)
    print(
        f"total {total:.0f} s. Rates are records/s over whole-process wall time (bounds: "
        "in-process); a stage whose first run took over "
        f"{args.single_run_limit:g} s was run once. Met? '-' = a reference figure (no goal)."
    )


if __name__ == "__main__":
    main()
