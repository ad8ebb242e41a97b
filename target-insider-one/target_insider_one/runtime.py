"""Resources shared by every sink of one run: settings, client, pool, writers, stats."""

from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING

from target_insider_one.client import InsiderClient, InsiderError, UpsertResponse
from target_insider_one.deadletter import DeadLetterWriter, JsonlWriter
from target_insider_one.settlement import Ledger, Undelivered
from target_insider_one.summary import RunStats, log_summary

if TYPE_CHECKING:
    from target_insider_one.settings import Settings


MIN_REDACTED_LENGTH = 6


class InsiderFatalError(InsiderError):
    """Stops the run: fast-fail, rejected credentials or a wrong endpoint."""

    def __init__(self, message: str, status: int | None = None, exit_code: int = 1) -> None:
        """Create the error.

        Args:
            message: Why the run stops (never contains credentials).
            status: HTTP status, if a response was received.
            exit_code: The process exit code (see :class:`~.settlement.ExitCode`).
        """
        super().__init__(message, status)
        self.exit_code = exit_code


class RedactingFilter(logging.Filter):
    """Replaces secrets in log records, whatever logger emitted them."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        """Create the filter.

        Args:
            secrets: Strings to hide.
        """
        super().__init__()
        # Very short values (test keys such as "k") would mangle every log line.
        self.secrets = tuple(s for s in secrets if s and len(s) >= MIN_REDACTED_LENGTH)

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact and keep the record.

        Args:
            record: The log record.

        Returns:
            Always True.
        """
        if not self.secrets:
            return True
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg = message
            record.args = None
        return True


class Runtime:
    """Lazily created shared resources."""

    def __init__(self, settings: Settings, logger: logging.Logger) -> None:
        """Create the runtime.

        Args:
            settings: Validated settings.
            logger: The target's logger.
        """
        self.settings = settings
        self.logger = logger
        self.stats = RunStats()
        self.ledger = Ledger()
        self.run_id = uuid.uuid4().hex[:12]
        self.finished = False
        # Set by the first sink that stops the run; the other sinks (drained in parallel,
        # sharing the pool) then send nothing more and stop too.
        self.fatal: InsiderError | None = None
        self.stopping = threading.Event()  # wakes requests sleeping between retries
        self._lock = threading.Lock()
        self._filter = RedactingFilter((settings.api_key,))
        self._filtered: list[logging.Handler | logging.Logger] = [
            *logging.getLogger().handlers,
            logger,
        ]
        for item in self._filtered:
            item.addFilter(self._filter)

    def submit(self, body: bytes) -> Future[UpsertResponse] | None:
        """Start an upsert in the pool, unless a sink has stopped the run.

        Returns:
            The future, or None when the run is stopping (nothing more may be sent).
        """
        with self._lock:  # no request slips in between stop() and the pool's shutdown
            if self.fatal is not None:
                return None
            return self.executor.submit(self.client.upsert, body)

    def stop(self, error: InsiderError) -> None:
        """Stop the run: nothing more is sent, and requests being retried give up.

        Args:
            error: Why (the first error wins).
        """
        with self._lock:
            self.fatal = self.fatal or error
        self.stopping.set()

    @cached_property
    def client(self) -> InsiderClient:
        """The HTTP client."""
        s = self.settings
        return InsiderClient(
            upsert_url=s.upsert_url,
            partner_name=s.partner_name,
            api_key=s.api_key,
            timeout=s.request_timeout,
            max_retries=s.max_retries,
            retry_budget_seconds=s.retry_budget_seconds,
            backoff_base_seconds=s.backoff_base_seconds,
            backoff_max_seconds=s.backoff_max_seconds,
            stats=self.stats,
            pool_size=s.max_concurrent_requests,
            stop=self.stopping,
        )

    @cached_property
    def executor(self) -> ThreadPoolExecutor:
        """Bounded pool shared by all sinks: at most max_concurrent_requests in flight."""
        return ThreadPoolExecutor(
            max_workers=self.settings.max_concurrent_requests,
            thread_name_prefix="insider-upsert",
        )

    @cached_property
    def dead_letters(self) -> DeadLetterWriter:
        """The dead-letter file (created on first write)."""
        return DeadLetterWriter(
            self.settings.dead_letter_path, self.run_id, redact=(self.settings.api_key,)
        )

    def flush_dead_letters(self) -> None:
        """Flush and fsync the dead-letter file, if one was opened."""
        if "dead_letters" in self.__dict__:  # a cached_property that was used
            self.dead_letters.flush()

    def abandon(self, signum: int) -> None:
        """Prepare an immediate exit on a signal, from the signal handler.

        The main thread may hold any lock at this moment, so nothing here waits for one:
        the dead-letter file is flushed only if its lock is free within a second (every
        dead letter before the last emitted STATE was flushed before that STATE anyway).

        Args:
            signum: The signal received.
        """
        if "dead_letters" in self.__dict__:
            self.dead_letters.flush_and_hold(timeout=1.0)
        counts = self.stats.counts  # read without its lock: the main thread may hold it
        self.logger.warning(
            "Received signal %d: stopping now, without draining and without further STATE "
            "(%d records received, %d upserted, %d dead-lettered); the last STATE emitted "
            "covers only settled records, so the next run re-sends the rest",
            signum,
            counts["records_received"],
            counts["users_upserted"],
            counts["records_dead_lettered"],
        )

    @cached_property
    def dry_run_writer(self) -> JsonlWriter:
        """The dry-run payload file."""
        return JsonlWriter(self.settings.dry_run_path, redact=(self.settings.api_key,))

    def finish(self, *, status: str, error: str | None = None) -> None:
        """Close resources and log the summary (once).

        Args:
            status: ``succeeded``, ``incomplete``, ``too_many_dead_letters`` or ``failed``.
            error: Why the run stopped, logged last (still through the redacting filter).
        """
        with self._lock:
            if self.finished:
                return
            self.finished = True
        if "executor" in self.__dict__:
            self.executor.shutdown(wait=True, cancel_futures=True)
        if "client" in self.__dict__:
            self.client.close()
        dead_letter_path = None
        if "dead_letters" in self.__dict__:
            self.dead_letters.close()
            if self.dead_letters.lines or self.dead_letters.duplicates:
                dead_letter_path = str(self.dead_letters.path)
        if "dry_run_writer" in self.__dict__:
            self.dry_run_writer.close()
        if self.settings.dry_run:
            self.logger.info(
                "Dry run: nothing was sent; request bodies written to %s",
                self.settings.dry_run_path,
            )
        counts = self.stats.as_dict()
        accounted = (
            counts["records_dead_lettered"]
            + counts["records_undelivered"]
            + (counts["dry_run_users"] if self.settings.dry_run else counts["users_upserted"])
        )
        if status == "failed" and accounted < counts["records_received"]:
            # Records still buffered, or in the request that stopped the run.
            self.stats.undelivered(Undelivered.RUN_STOPPED, counts["records_received"] - accounted)
        elif accounted != counts["records_received"]:
            self.logger.warning(
                "Accounting mismatch: %d records received but %d upserted, dead-lettered or "
                "not delivered",
                counts["records_received"],
                accounted,
            )
        log_summary(
            self.logger,
            self.stats.human_summary(
                status=status, dead_letter_path=dead_letter_path, dry_run=self.settings.dry_run
            ),
        )
        self.stats.emit_metrics(status=status)
        if error is not None:
            self.logger.error("target-insider-one stopped: %s", error)
        for item in self._filtered:
            item.removeFilter(self._filter)
