"""Run the sandbox as a real subprocess from tests, demos and benchmarks.

    with SandboxProcess(rows=1000) as sb:
        sb.configure(filter_mode="ignored")
        config = sb.tap_config()

The process gets its own process group and is always terminated on exit, even when
the body raises, so no test leaves a server behind.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

SUBDOMAIN = "mcsandbox0000000000000000000"  # 28 characters, like real tenant subdomains
SFMC_CLIENT_ID = "sandbox-client-id"
SFMC_CLIENT_SECRET = "sandbox-client-secret"  # noqa: S105 - published demo credential
SFMC_ACCOUNT_ID = "100001"
INSIDER_PARTNER = "sandboxpartner"
INSIDER_API_KEY = "sandbox-api-key"


class SandboxError(RuntimeError):
    """The sandbox failed to start or an admin call failed."""


class AdminClient:
    """Minimal JSON client for ``/_sandbox/`` (stdlib only, no auth)."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Send one admin request and decode the JSON reply.

        Raises:
            SandboxError: on a non-2xx reply.
        """
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
            f"{self.base_url}/_sandbox/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise SandboxError(f"{method} {path} -> {exc.code}: {detail}") from exc


class SandboxProcess:
    """Context manager around ``python -m api_sandbox serve --sfmc-port 0 ...``.

    Args:
        rows: size of the demo ``Customers`` DE.
        seed: generator seed.
        config: switches/des/faults/scenarios, written to a temporary ``--config`` file.
        extra_args: more CLI arguments, e.g. ``["--filter-mode", "ignored"]``.
        demo_params: generator params of the demo DE, e.g. ``{"edge_values": 20}``.
        start_timeout: seconds to wait for the ready line.
        log_path: where the server's stderr goes (a temp file by default).
    """

    def __init__(
        self,
        *,
        rows: int = 5000,
        seed: int = 42,
        config: dict[str, Any] | None = None,
        extra_args: list[str] | None = None,
        demo_params: dict[str, Any] | None = None,
        start_timeout: float = 60.0,
        log_path: Path | None = None,
    ) -> None:
        self.demo_rows = rows
        self.seed = seed
        self.config = config
        self.extra_args = list(extra_args or [])
        if demo_params:
            self.extra_args += ["--demo-params", json.dumps(demo_params)]
        self.start_timeout = start_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="api-sandbox-")
        self.log_path = log_path or Path(self._tmp.name) / "sandbox.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.sfmc_url = ""
        self.insider_url = ""
        self.admin: AdminClient | None = None

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> SandboxProcess:
        """Start the process and wait for its ready line.

        Raises:
            SandboxError: when it does not become ready in time.
        """
        args = [
            sys.executable, "-m", "api_sandbox", "serve",
            "--sfmc-port", "0", "--insider-port", "0",
            "--rows", str(self.demo_rows), "--seed", str(self.seed),
            "--parent-pid", str(os.getpid()),
        ]  # fmt: skip
        if self.config is not None:
            path = Path(self._tmp.name) / "config.json"
            path.write_text(json.dumps(self.config), encoding="utf-8")
            args += ["--config", str(path)]
        args += self.extra_args
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter
                args, stdout=subprocess.PIPE, stderr=log, start_new_session=True
            )
        finally:
            log.close()
        try:
            ready = self._read_ready_line()
        except BaseException:
            self.stop()
            raise
        self.sfmc_url = ready["sfmc_url"]
        self.insider_url = ready["insider_url"]
        self.admin = AdminClient(self.sfmc_url)
        return self

    def _read_ready_line(self) -> dict[str, Any]:
        assert self.proc is not None  # noqa: S101 - set by start()
        assert self.proc.stdout is not None  # noqa: S101
        deadline = time.monotonic() + self.start_timeout
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    break
                if sel.select(timeout=min(left, 0.5)):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    buf += chunk
        if b"\n" not in buf:
            log = self.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise SandboxError(f"sandbox did not start (exit={self.proc.poll()}):\n{log}")
        return json.loads(buf.split(b"\n", 1)[0])

    def stop(self) -> None:
        """Terminate the whole process group and wait; escalate to SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except ProcessLookupError:
                pass  # already gone
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> SandboxProcess:
        """Start on entry."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Always stop, even when the body raised."""
        self.stop()
        self._tmp.cleanup()

    @property
    def log(self) -> str:
        """The server's stderr so far (request log)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def _admin(self) -> AdminClient:
        if self.admin is None:
            raise SandboxError("sandbox is not running")
        return self.admin

    # -- admin API --------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Switches, counters, faults, scenarios and DEs."""
        return self._admin().call("GET", "state")

    def configure(self, **switches: Any) -> dict[str, Any]:
        """Change switches (see README); returns the full config."""
        return self._admin().call("POST", "config", switches)

    def add_faults(self, *rules: dict[str, Any]) -> list[dict[str, Any]]:
        """Append fault rules; returns all rules with counters."""
        return self._admin().call("POST", "faults", list(rules))

    def clear_faults(self) -> list[dict[str, Any]]:
        """Remove every fault rule."""
        return self._admin().call("POST", "faults/clear", {})

    def faults(self) -> list[dict[str, Any]]:
        """Fault rules with their match/fire counters."""
        return self._admin().call("GET", "faults")

    def reset(self) -> None:
        """Back to the startup state (config, DEs, tokens, faults, logs)."""
        self._admin().call("POST", "reset", {})

    def counters(self) -> dict[str, Any]:
        """Request counters (see README "Counters")."""
        return self.state()["counters"]

    def reset_counters(self) -> dict[str, Any]:
        """Zero the request counters only; data, switches, faults and tokens stay."""
        return self._admin().call("POST", "counters/reset", {})

    def rowset_requests(self) -> dict[str, int]:
        """Row reads since the last reset: ``rest_key``, ``rest_token``, ``soap``, ``total``.

        Counted on arrival, so faulted, dropped and delayed requests count too. Token
        mints (``counters()["requests"]["token"]``) and SOAP ``DataExtensionField``
        retrieves (``soap_field_retrieves``) are not row reads.
        """
        return self.counters()["rowset_requests"]

    def rowset_request_count(self) -> int:
        """Total row reads of any kind (REST key and continuation URLs, SOAP retrieves)."""
        return self.rowset_requests()["total"]

    def rowset_in_flight_max(self) -> int:
        """The most REST rowset requests served at once since the last counter reset."""
        return self.counters()["rowset_in_flight_max"]

    def rowset_concurrency_blocked(self) -> int:
        """Rowset requests answered 429 errorcode 50200 by ``rowset_concurrency_limit``."""
        return self.counters()["rowset_concurrency_blocked"]

    def expire_tokens(self) -> int:
        """Expire every issued access token now; returns how many."""
        return self._admin().call("POST", "tokens/expire", {})["expired"]

    def expire_request_tokens(self) -> int:
        """Expire every rowset ``requestToken`` now; returns how many."""
        return self._admin().call("POST", "request-tokens/expire", {})["expired"]

    def create_de(
        self,
        key: str,
        *,
        name: str | None = None,
        fields: list[dict[str, Any]] | None = None,
        rows: list[dict[str, Any]] | None = None,
        size: int = 0,
        seed: int = 1,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create or replace a DE (explicit ``rows`` or ``size`` generated rows)."""
        spec: dict[str, Any] = {"key": key, "name": name or key, "size": size, "seed": seed}
        if fields is not None:
            spec["fields"] = fields
        if rows is not None:
            spec["rows"] = rows
        if params is not None:
            spec["params"] = params
        return self._admin().call("POST", "des", spec)

    def edge_rows(self, key: str = "Customers") -> dict[str, list[Any]]:
        """Keys of generated rows holding edge values.

        Params ``edge_values`` / ``edge_key_rows``; returns
        ``{"values": [...], "replication_key": [...]}``.
        """
        return self._admin().call("GET", f"des/{key}")["edge_rows"]

    def delete_de(self, key: str) -> None:
        """Remove a DE."""
        self._admin().call("DELETE", f"des/{key}")

    def mutate(
        self,
        key: str,
        update: int = 0,
        insert: int = 0,
        delete: int = 0,
        *,
        lag_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Change rows now; returns the change record (keys updated/inserted/deleted).

        ``lag_seconds``: stamp ModifiedDate that long before now, like a writer that
        commits late (default: the ``commit_lag_seconds`` switch).
        """
        body: dict[str, Any] = {"update": update, "insert": insert, "delete": delete}
        if lag_seconds is not None:
            body["lag_seconds"] = lag_seconds
        return self._admin().call("POST", f"des/{key}/mutate", body)

    def scenario(
        self,
        key: str = "Customers",
        after_page: int = 1,
        update: int = 0,
        insert: int = 0,
        delete: int = 0,
        *,
        lag_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Arm a live change that fires after page ``after_page`` of the rowset is served.

        ``lag_seconds`` as for ``mutate``.
        """
        spec: dict[str, Any] = {
            "de_key": key,
            "after_page": after_page,
            "update": update,
            "insert": insert,
            "delete": delete,
        }
        if lag_seconds is not None:
            spec["lag_seconds"] = lag_seconds
        return self._admin().call("POST", "scenario", spec)

    def rows(
        self, key: str = "Customers", limit: int | None = None, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Typed rows in insertion order (dates ISO with -06:00, Decimal as string)."""
        query = f"?offset={offset}" + (f"&limit={limit}" if limit is not None else "")
        return self._admin().call("GET", f"des/{key}/rows{query}")["rows"]

    def changes(self, key: str = "Customers") -> dict[str, Any]:
        """All live changes so far plus flattened ``updated``/``inserted``/``deleted`` keys."""
        return self._admin().call("GET", f"des/{key}/changes")

    def profiles(self) -> list[dict[str, Any]]:
        """Profiles the Insider emulator holds."""
        return self._admin().call("GET", "profiles")

    def requests(self, endpoint: str | None = "upsert") -> list[dict[str, Any]]:
        """Insider request log (time, endpoint, users, bytes, skip_hook, partner, status...).

        Args:
            endpoint: ``upsert`` (default), ``columns``, or None for every request.
        """
        log = self._admin().call("GET", "requests")
        return [r for r in log if endpoint is None or r.get("endpoint") == endpoint]

    # -- plugin config helpers ------------------------------------------------------------
    def tap_config(self, **overrides: Any) -> dict[str, Any]:
        """A ``tap-sfmc-de`` config pointing at this sandbox."""
        return {
            "client_id": SFMC_CLIENT_ID,
            "client_secret": SFMC_CLIENT_SECRET,
            "subdomain": SUBDOMAIN,
            "account_id": SFMC_ACCOUNT_ID,
            "auth_base_url": self.sfmc_url,
            "data_extension_keys": ["Customers"],
            **overrides,
        }

    def target_config(self, **overrides: Any) -> dict[str, Any]:
        """A ``target-insider-one`` config pointing at this sandbox."""
        return {
            "partner_name": INSIDER_PARTNER,
            "api_key": INSIDER_API_KEY,
            "api_base_url": self.insider_url,
            **overrides,
        }
