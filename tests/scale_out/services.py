"""Throwaway services for the scale-out tests: a PostgreSQL server and an S3-compatible store.

Both bind to 127.0.0.1 on a free port, are ready when `start()` returns (polled, never a
fixed sleep) and are stopped by `stop()` even when a test failed. PostgreSQL runs from the
Debian package's binaries (`make services` installs them when missing) as the `postgres`
user when we are root (it refuses to run as root), with its data directory under a temporary
directory. The S3 store is moto's server, in a thread of the test process.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psycopg
from moto.server import ThreadedMotoServer

HOST = "127.0.0.1"
START_TIMEOUT = 60.0
S3_KEY_ID = "testing"  # moto accepts any credentials; these are not secrets
S3_SECRET = "testing"


class ServiceError(RuntimeError):
    """A service did not start or is not installed."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_for(ready: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
    """Poll `ready` until it returns True.

    Raises:
        ServiceError: when it did not within `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.1)


def postgres_bindir() -> Path:
    """Where initdb and postgres are (`pg_config --bindir`, else Debian's layout).

    Raises:
        ServiceError: when PostgreSQL is not installed, naming the command that installs it.
    """
    candidates = []
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(map(str, Path("/usr/lib/postgresql").glob("*/bin")), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise ServiceError("PostgreSQL server binaries not found: run `make services` (installs them)")


class PostgresServer:
    """A PostgreSQL cluster in a temporary directory, trust auth, listening on 127.0.0.1 only."""

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        self._tmp = tempfile.TemporaryDirectory(prefix="scale-out-pg-")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        # postgres refuses to run as root: run it as the `postgres` system user then.
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return Path(self._tmp.name) / "data"

    @property
    def socket_dir(self) -> Path:
        """Where the server puts its Unix socket and lock file (not used by the tests)."""
        return Path(self._tmp.name) / "socket"

    @property
    def log_path(self) -> Path:
        """The server's log file (for failure reports)."""
        return Path(self._tmp.name) / "postgres.log"

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        """A connection URL; `driver="postgresql+psycopg"` for SQLAlchemy (Meltano)."""
        return f"{driver}://postgres@{HOST}:{self.port}/{database}"

    def _chown(self, path: Path) -> None:
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> PostgresServer:
        """Create the cluster and start the server; returns when it accepts connections.

        Raises:
            ServiceError: when initdb fails or the server does not come up.
        """
        base = Path(self._tmp.name)
        base.chmod(0o755)  # the postgres user must reach its data directory
        self.data_dir.mkdir(mode=0o700)
        self._chown(self.data_dir)
        init = subprocess.run(
            [self.bindir / "initdb", "-D", self.data_dir, "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--no-sync"],
            user=self.user, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if init.returncode != 0:
            raise ServiceError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        self.log_path.touch()
        self._chown(self.log_path)
        self.socket_dir.mkdir()
        self._chown(self.socket_dir)
        self.port = free_port()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.bindir / "postgres", "-D", self.data_dir, "-h", HOST, "-p", str(self.port),
                 "-k", self.socket_dir, "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=200"],
                user=self.user, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        try:
            wait_for(self._accepts_connections, f"PostgreSQL on port {self.port}")
        except BaseException:
            self.stop()
            raise
        return self

    def _accepts_connections(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = self.log_path.read_text(errors="replace")[-2000:]
            raise ServiceError(f"postgres exited {self.proc.returncode}:\n{log}")
        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its name."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def query(self, database: str, sql: str) -> list[tuple[object, ...]]:
        """Rows of one query (tests read what landed, from outside the plugins)."""
        with psycopg.connect(self.url(database)) as conn:
            return list(conn.execute(sql))

    def stop(self) -> None:
        """Fast shutdown (SIGINT), SIGKILL if it lingers; remove the cluster."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self._tmp.cleanup()


class S3Server:
    """moto's S3-compatible server on 127.0.0.1 (in-process thread)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://{HOST}:{self.port}"
        self._server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)

    def start(self) -> S3Server:
        """Start the server; returns when it answers HTTP."""
        self._server.start()
        wait_for(self._answers, f"moto S3 server on port {self.port}")
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}/", timeout=2):  # noqa: S310
                return True
        except urllib.error.HTTPError:
            return True  # any HTTP answer means it is serving
        except OSError:
            return False

    def client(self):
        """A boto3 S3 client on this server (to create buckets and read what Meltano wrote)."""
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
            aws_access_key_id=S3_KEY_ID, aws_secret_access_key=S3_SECRET,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server thread."""
        self._server.stop()
