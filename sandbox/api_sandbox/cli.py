"""``sandbox serve``: start both emulators and print one JSON ready line."""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from api_sandbox.app import Sandbox
from api_sandbox.config import (
    DEFAULT_ORDERS,
    FILTER_DATE_LITERALS,
    FILTER_GRAMMARS,
    QUERY_MODES,
    ConfigError,
    SandboxConfig,
)
from api_sandbox.server import SandboxServer

_SPECIAL_KEYS = ("des", "faults", "scenarios", "demo_de")
# The profile store keeps a few dicts per upserted user and every rowset page allocates
# tens of thousands of tuples: at CPython's default thresholds (700, 10, 10) the cyclic
# collector rescanned the whole profile store every few upserts, ~40 % of an upsert's CPU
# (json.loads of the body included). The sandbox makes few reference cycles, so collecting
# less often costs little memory.
_GC_THRESHOLDS = (10_000, 10, 10)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the SFMC and Insider emulators on 127.0.0.1")
    serve.add_argument("--sfmc-port", type=int, default=8801, help="0 picks a free port")
    serve.add_argument("--insider-port", type=int, default=8802, help="0 picks a free port")
    serve.add_argument("--rows", type=int, default=5000, help="rows in the demo DE")
    serve.add_argument("--seed", type=int, default=42, help="generator seed")
    serve.add_argument(
        "--de-key", default="Customers", help="external key (and name) of the demo DE"
    )
    serve.add_argument(
        "--demo-params",
        type=json.loads,
        help="generator params of the demo DE as JSON, e.g. '{\"edge_values\": 20}'",
    )
    serve.add_argument("--config", type=Path, help="JSON file: switches plus des/faults/scenarios")
    serve.add_argument("--filter-mode", choices=QUERY_MODES)
    serve.add_argument("--orderby-mode", choices=QUERY_MODES)
    serve.add_argument("--filter-grammar", choices=FILTER_GRAMMARS)
    serve.add_argument("--filter-date-literal", choices=FILTER_DATE_LITERALS)
    serve.add_argument("--default-order", choices=DEFAULT_ORDERS)
    serve.add_argument("--commit-lag", type=int, help="seconds (switch commit_lag_seconds)")
    serve.add_argument("--snapshot", action="store_true", help="request tokens pin the result set")
    serve.add_argument("--token-lifetime", type=int, help="access token lifetime in seconds")
    serve.add_argument("--scopes", help="space-separated scopes granted to the package")
    serve.add_argument(
        "--fault", action="append", default=[], help="fault rule as JSON (repeatable)"
    )
    serve.add_argument(
        "--set", action="append", default=[], metavar="NAME=JSON", help="any switch (repeatable)"
    )
    serve.add_argument(
        "--parent-pid",
        type=int,
        help="exit when this process goes away (the test harness passes its own pid)",
    )
    return parser


def _flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Switches set by dedicated flags and ``--set``."""
    overrides: dict[str, Any] = {}
    if args.filter_mode:
        overrides["filter_mode"] = args.filter_mode
    if args.orderby_mode:
        overrides["orderby_mode"] = args.orderby_mode
    for name in ("filter_grammar", "filter_date_literal", "default_order"):
        if getattr(args, name):
            overrides[name] = getattr(args, name)
    if args.commit_lag is not None:
        overrides["commit_lag_seconds"] = args.commit_lag
    if args.snapshot:
        overrides["request_token_snapshot"] = True
    if args.token_lifetime is not None:
        overrides["token_lifetime_seconds"] = args.token_lifetime
    if args.scopes is not None:
        overrides["granted_scopes"] = args.scopes.split()
    for item in args.set:
        name, _, raw = item.partition("=")
        try:
            overrides[name] = json.loads(raw)
        except ValueError:
            overrides[name] = raw  # bare strings need no JSON quoting
    return overrides


def build_sandbox(args: argparse.Namespace) -> Sandbox:
    """Turn CLI arguments (and the optional config file) into a Sandbox.

    Raises:
        ConfigError: on bad switches.
    """
    file_cfg: dict[str, Any] = {}
    if args.config:
        file_cfg = json.loads(args.config.read_text(encoding="utf-8"))
    config = SandboxConfig()
    config.update({k: v for k, v in file_cfg.items() if k not in _SPECIAL_KEYS})
    config.update(_flag_overrides(args))
    specs: list[dict[str, Any]] = []
    extra = list(file_cfg.get("des", []))
    if file_cfg.get("demo_de", True) and not any(
        str(s.get("key", "")).lower() == args.de_key.lower() for s in extra
    ):
        demo = {"key": args.de_key, "name": args.de_key, "size": args.rows, "seed": args.seed}
        if args.demo_params:
            demo["params"] = args.demo_params
        specs.append(demo)
    specs.extend(extra)
    faults = list(file_cfg.get("faults", [])) + [json.loads(f) for f in args.fault]
    return Sandbox(config, specs, faults, file_cfg.get("scenarios", []))


def _gone_check(pid: int) -> Callable[[], bool]:
    """A check that tells when process ``pid`` has gone away."""
    if os.getppid() == pid:
        # Our parent: being reparented is the reliable sign, since a dead parent that
        # nobody has reaped yet still answers kill(pid, 0) as a zombie.
        return lambda: os.getppid() != pid

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # exists, owned by someone else
        return False

    return gone


def serve(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT."""
    gc.set_threshold(*_GC_THRESHOLDS)
    try:
        app = build_sandbox(args)
    except (ConfigError, ValueError, OSError) as exc:
        sys.stderr.write(f"sandbox: {exc}\n")
        return 2
    sfmc = SandboxServer(args.sfmc_port, "sfmc", app)
    insider = SandboxServer(args.insider_port, "insider", app)
    stop = threading.Event()

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        for s in (sfmc, insider)
    ]
    for t in threads:
        t.start()
    sys.stdout.write(json.dumps({"sfmc_url": sfmc.url, "insider_url": insider.url}) + "\n")
    sys.stdout.flush()
    watched_gone = _gone_check(args.parent_pid) if args.parent_pid else None
    while not stop.wait(0.5):
        # A SIGKILLed test runner cannot stop us: watch it instead.
        if watched_gone is not None and watched_gone():
            sys.stderr.write("sandbox: watched process gone, stopping\n")
            break
    for s in (sfmc, insider):
        s.shutdown()
        s.server_close()
    sys.stderr.write("sandbox: stopped\n")
    return 0


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        raise SystemExit(serve(args))


if __name__ == "__main__":
    main()
