"""The process harness, CLI flags, config file, admin helpers and plugin fixtures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
from api_sandbox.testing import SandboxError, SandboxProcess


def test_factory_flags_and_config_file(sandbox_factory):
    config = {
        "filter_mode": "ignored",
        "granted_scopes": ["offline"],
        "des": [{"key": "Extra", "fields": [{"name": "A", "is_primary_key": True}], "size": 3}],
        "faults": [{"endpoint": "upsert", "status": 503}],
    }
    sb = sandbox_factory(rows=10, seed=7, config=config, extra_args=["--orderby-mode", "ignored"])
    state = sb.state()
    assert state["config"]["filter_mode"] == "ignored"
    assert state["config"]["orderby_mode"] == "ignored"
    assert {d["key"]: d["rows"] for d in state["des"]} == {"Customers": 10, "Extra": 3}
    assert state["faults"][0]["status"] == 503
    sb.reset()  # reset goes back to the startup state, including startup faults
    assert sb.state()["faults"][0]["fired"] == 0


def test_config_helpers(sandbox):
    tap = sandbox.tap_config(start_date="2024-01-01")
    assert tap["auth_base_url"] == sandbox.sfmc_url
    assert tap["subdomain"] == "mcsandbox0000000000000000000"
    assert len(tap["subdomain"]) == 28
    assert tap["data_extension_keys"] == ["Customers"]
    assert tap["start_date"] == "2024-01-01"
    target = sandbox.target_config()
    assert target == {
        "partner_name": "sandboxpartner",
        "api_key": "sandbox-api-key",
        "api_base_url": sandbox.insider_url,
    }


def test_reset_restores_data(sandbox):
    sandbox.create_de("Tmp", fields=[{"name": "A"}], size=1)
    sandbox.mutate("Customers", delete=10)
    sandbox.configure(filter_mode="ignored")
    sandbox.reset()
    state = sandbox.state()
    assert [d["key"] for d in state["des"]] == ["Customers"]
    assert state["des"][0]["rows"] == 5000
    assert state["config"]["filter_mode"] == "honoured"


def test_admin_errors_are_raised(sandbox):
    with pytest.raises(SandboxError):
        sandbox.mutate("Nope", update=1)
    with pytest.raises(SandboxError):
        sandbox.configure(filter_mode="sometimes")


def test_stop_terminates_process_group():
    sb = SandboxProcess(rows=5)
    with sb:
        pid = sb.proc.pid
        assert requests.get(f"{sb.sfmc_url}/_sandbox/state", timeout=5).ok
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_stops_even_when_body_raises():
    sb = SandboxProcess(rows=5)
    pids = []

    def body():
        with sb:
            pids.append(sb.proc.pid)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        body()
    (pid,) = pids
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_start_failure_is_reported(tmp_path):
    bad = SandboxProcess(rows=5, extra_args=["--set", "filter_mode=sometimes"])
    with pytest.raises(SandboxError, match="did not start"):
        bad.start()


def test_cli_ready_line_and_sigterm():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api_sandbox",
            "serve",
            "--sfmc-port",
            "0",
            "--insider-port",
            "0",
            "--rows",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        line = proc.stdout.readline()
        ready = json.loads(line)
        assert set(ready) == {"sfmc_url", "insider_url"}
        assert ready["sfmc_url"].startswith("http://127.0.0.1:")
        token = requests.post(
            f"{ready['sfmc_url']}/v2/token",
            json={
                "grant_type": "client_credentials",
                "client_id": "sandbox-client-id",
                "client_secret": "sandbox-client-secret",
            },
            timeout=5,
        ).json()["access_token"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        log = proc.stderr.read().decode()
        assert "POST /v2/token -> 200" in log
        assert token not in log
        assert "sandbox-client-secret" not in log
        assert proc.stdout.read() == b""
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_admin_rows_typed(sandbox):
    rows = sandbox.rows(limit=50)
    assert len(rows) == 50
    sample = rows[0]
    assert sample["SubscriberKey"] == "SK00000000"
    assert sample["ModifiedDate"].endswith("-06:00")
    assert any(isinstance(r["EmailOptIn"], bool) for r in rows)
    assert any(isinstance(r["LifetimeValue"], str) for r in rows)
    assert any(isinstance(r["LoyaltyPoints"], int) for r in rows)


def test_exits_when_parent_dies(tmp_path):
    # A middle process starts the sandbox with --parent-pid, prints its pid, then is killed.
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-m', 'api_sandbox', 'serve', '--sfmc-port', '0',"
        " '--insider-port', '0', '--rows', '5', '--parent-pid', str(os.getpid())],"
        " stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)\n"
        "p.stdout.readline()\n"
        "print(p.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=True
    )
    child = int(out.stdout.strip())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    pytest.fail("sandbox outlived its parent")


def test_watches_a_pid_that_is_not_its_parent():
    # --parent-pid may name any process (e.g. a shell further up); the sandbox must not
    # mistake "not my parent" for "gone", and must still stop once that process exits.
    watched = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "api_sandbox", "serve", "--sfmc-port", "0", "--insider-port",
         "0", "--rows", "5", "--parent-pid", str(watched.pid)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().startswith(b"{")
        time.sleep(1.5)  # three watch intervals
        assert proc.poll() is None, "the sandbox stopped although the watched pid is alive"
        watched.kill()
        watched.wait()
        assert proc.wait(timeout=10) == 0
    finally:
        watched.kill()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()


def test_sigint_exits_cleanly():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api_sandbox",
            "serve",
            "--sfmc-port",
            "0",
            "--insider-port",
            "0",
            "--rows",
            "5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        json.loads(proc.stdout.readline())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()


def test_state_counters(sandbox, http):
    creds = {
        "grant_type": "client_credentials",
        "client_id": "sandbox-client-id",
        "client_secret": "sandbox-client-secret",
    }
    token = http.post(f"{sandbox.sfmc_url}/v2/token", json=creds, timeout=10).json()["access_token"]
    url = f"{sandbox.sfmc_url}/data/v1/customobjectdata/key/Customers/rowset"
    http.get(
        url, params={"$pageSize": 10}, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    http.post(
        f"{sandbox.insider_url}/api/user/v1/upsert",
        json={
            "users": [
                {"identifiers": {"uuid": "1"}, "attributes": {"name": "a"}},
                {"identifiers": {"email": "x"}},
            ]
        },
        headers={"X-PARTNER-NAME": "sandboxpartner", "X-REQUEST-TOKEN": "sandbox-api-key"},
        timeout=10,
    )
    counters = sandbox.state()["counters"]
    assert counters["requests"] == {"token": 1, "rowset": 1, "upsert": 1}
    assert counters["statuses"]["rowset:200"] == 1
    assert counters["tokens_minted"] == 1
    assert counters["pages_served"] == {"Customers": 1}
    assert counters["rows_served"] == {"Customers": 10}
    assert counters["users_accepted"] == 1
    assert counters["users_rejected"] == 1
    assert counters["profiles"] == 1
    # the same state is served by the Insider port
    assert (
        requests.get(f"{sandbox.insider_url}/_sandbox/state", timeout=10).json()["counters"]
        == counters
    )


def _non_loopback_ipv4():
    """This host's outward IPv4 address (no packet is sent), or None."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing lookup only
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_listens_on_loopback_only(sandbox):
    for url in (sandbox.sfmc_url, sandbox.insider_url):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        address = _non_loopback_ipv4()
        if address is None:
            pytest.skip("no non-loopback IPv4 address to probe from")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, port), timeout=5).close()


def test_factory_stops_every_sandbox_even_when_one_stop_fails(monkeypatch):
    from api_sandbox import pytest_plugin

    stopped = []

    class Fake:
        def __init__(self, name):
            self.name = name

        def __enter__(self):
            return self

        def __exit__(self, *_exc):
            stopped.append(self.name)
            if self.name == "second":
                raise RuntimeError("stop failed")

    monkeypatch.setattr(pytest_plugin, "SandboxProcess", Fake)
    fixture = pytest_plugin.sandbox_factory.__wrapped__()
    factory = next(fixture)
    for name in ("first", "second", "third"):
        factory(name=name)
    with pytest.raises(RuntimeError, match="stop failed"):
        next(fixture)
    assert sorted(stopped) == ["first", "second", "third"]
