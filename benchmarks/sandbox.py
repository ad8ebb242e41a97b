"""Measure how fast the sandbox serves 2,500-row rowset pages over real HTTP.

    .venv/bin/python -m benchmarks.sandbox --rows 1000000

Prints startup (generate + load) time and per-page latency at several depths, for
the plain key URL, continuation pages and a filtered + ordered incremental query.
Timing is printed, never asserted: the point is that the sandbox never dominates a
benchmark of the plugins.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import requests
from api_sandbox.testing import SandboxProcess

CREDS = {
    "grant_type": "client_credentials",
    "client_id": "sandbox-client-id",
    "client_secret": "sandbox-client-secret",
}


def _timed(
    session: requests.Session, url: str, headers: dict[str, str], params: dict[str, str]
) -> tuple[float, dict]:
    started = time.perf_counter()
    resp = session.get(url, headers=headers, params=params, timeout=60)
    elapsed = (time.perf_counter() - started) * 1000
    resp.raise_for_status()
    return elapsed, resp.json()


def _report(label: str, samples: list[float]) -> None:
    samples = sorted(samples)
    p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
    median = statistics.median(samples)
    print(f"{label:<46} n={len(samples):<3} median={median:6.1f} ms  p95={p95:6.1f} ms")


def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=20, help="pages sampled per scenario")
    args = parser.parse_args()

    started = time.perf_counter()
    with SandboxProcess(rows=args.rows, start_timeout=300) as sb, requests.Session() as http:
        print(f"startup with {args.rows:,} rows: {time.perf_counter() - started:.1f} s")
        token = http.post(f"{sb.sfmc_url}/v2/token", json=CREDS, timeout=10).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        key_url = f"{sb.sfmc_url}/data/v1/customobjectdata/key/Customers/rowset"

        samples = [
            _timed(http, key_url, headers, {"$pageSize": "2500"})[0] for _ in range(args.pages)
        ]
        _report("key URL, page 1", samples)

        pages = _ContinuationPages(http, headers, sb.sfmc_url, key_url, args.pages)
        pages.report("continuation", {"$pageSize": "2500"})
        pages.report(
            "filtered+ordered",
            {
                "$pageSize": "2500",
                "$filter": "ModifiedDate gte '2025-01-01T00:00:00'",
                "$orderBy": "ModifiedDate asc, SubscriberKey asc",
            },
        )


@dataclass(frozen=True)
class _ContinuationPages:
    """Samples the continuation (request token) pages of one query, spread over its depth."""

    http: requests.Session
    headers: dict[str, str]
    sfmc_url: str
    key_url: str
    sampled: int

    def report(self, label: str, query: dict[str, str]) -> None:
        _, first = _timed(self.http, self.key_url, self.headers, query)
        last_page = max(1, (first["count"] + 2499) // 2500)
        token = first["requestToken"]
        token_url = f"{self.sfmc_url}/data/v1/customobjectdata/token/{token}/rowset"
        step = max(1, last_page // self.sampled)
        samples = [
            _timed(self.http, token_url, self.headers, {"$page": str(p)})[0]
            for p in range(1, last_page + 1, step)
        ]
        _report(f"{label} pages 1..{last_page} (every {step})", samples)


if __name__ == "__main__":
    main()
