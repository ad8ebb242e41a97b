"""The latency scenario: a slow SFMC and a slow Insider, the pipe's wall vs its bounds.

Every rowset request (REST and SOAP row reads) sleeps ``rowset_seconds`` and every upsert
``upsert_seconds`` in the sandbox (its ``latency`` switch). From the sandbox's counters of
that run:
- the sequential sum = rowset requests x rowset_seconds + upserts x upsert_seconds (what a
  run that overlaps nothing would take);
- the bound = the slowest stage at the configured concurrency:
  max(rowset requests x rowset_seconds / page_concurrency,
  upserts x upsert_seconds / max_concurrent_requests).
``page_concurrency`` is the tap's setting when its config schema has one (else 1: pages
are read one at a time), ``max_concurrent_requests`` the target's, both as configured.
"""

from __future__ import annotations

from dataclasses import dataclass

from api_sandbox.testing import SandboxProcess

from benchmarks import project
from benchmarks.sandbox_counts import Counts
from benchmarks.stages import Plugins


@dataclass(frozen=True)
class LatencyResult:
    """One run of the pipe behind latency."""

    seconds: float
    counts: Counts
    sequential_seconds: float
    bound_seconds: float
    page_concurrency: int
    upsert_concurrency: int


def run(
    sandbox: SandboxProcess,
    plugins: Plugins,
    tap_config: dict,
    target_config: dict,
    *,
    rowset_seconds: float,
    upsert_seconds: float,
) -> LatencyResult:
    """Run ``tap | target`` once behind the latency and measure it against its bounds."""
    page_concurrency = int(project.configured(project.TAP, tap_config, "page_concurrency", 1))
    upsert_concurrency = int(
        project.configured(project.TARGET, target_config, "max_concurrent_requests", 1)
    )
    sandbox.configure(
        latency={"rowset": rowset_seconds, "soap_rows": rowset_seconds, "upsert": upsert_seconds}
    )
    try:
        before = Counts.of(sandbox)
        wall = plugins.pipe("tap | target behind latency").seconds
        counts = Counts.of(sandbox) - before
    finally:
        sandbox.configure(latency={})
    fetching = counts.rowset_requests * rowset_seconds
    upserting = counts.upsert_requests * upsert_seconds
    return LatencyResult(
        wall,
        counts,
        fetching + upserting,
        max(fetching / page_concurrency, upserting / upsert_concurrency),
        page_concurrency,
        upsert_concurrency,
    )
