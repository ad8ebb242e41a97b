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
from target_insider_one.summary import RunStats, log_summary

if TYPE_CHECKING:
    from target_insider_one.settings import Settings


MIN_REDACTED_LENGTH = 6


class InsiderFatalError(InsiderError):
    """Stops the run: fast-fail, rejected credentials or a wrong endpoint."""


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
        self.run_id = uuid.uuid4().hex[:12]
        self.finished = False
        self.batches_in_flight = 0
        # Set by the first sink that stops the run; the other sinks (drained in parallel,
        # sharing the pool) then send nothing more and stop too.
        self.fatal: InsiderError | None = None
        self._lock = threading.Lock()
        self._filter = RedactingFilter((settings.api_key,))
        self._filtered: list[logging.Handler | logging.Logger] = [
            *logging.getLogger().handlers,
            logger,
        ]
        for item in self._filtered:
            item.addFilter(self._filter)

    def batch_started(self) -> None:
        """Note that a sink is delivering a batch."""
        with self._lock:
            self.batches_in_flight += 1

    def batch_ended(self) -> None:
        """Note that a sink's batch has settled (or failed)."""
        with self._lock:
            self.batches_in_flight -= 1

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
        """Stop the run: every sink sends nothing more.

        Args:
            error: Why (the first error wins).
        """
        with self._lock:
            self.fatal = self.fatal or error

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
            backoff_base_seconds=s.backoff_base_seconds,
            backoff_max_seconds=s.backoff_max_seconds,
            stats=self.stats,
            pool_size=s.max_concurrent_requests,
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

    def flush_dead_letters(self, *, hold: bool = False) -> None:
        """Flush and fsync the dead-letter file, if one was opened.

        Args:
            hold: Keep it locked afterwards (right before an immediate process exit).
        """
        if "dead_letters" in self.__dict__:  # a cached_property that was used
            if hold:
                self.dead_letters.flush_and_hold()
            else:
                self.dead_letters.flush()

    @cached_property
    def dry_run_writer(self) -> JsonlWriter:
        """The dry-run payload file."""
        return JsonlWriter(self.settings.dry_run_path, redact=(self.settings.api_key,))

    def finish(self, *, status: str, error: str | None = None) -> None:
        """Close resources and log the summary (once).

        Args:
            status: ``succeeded`` or ``failed``.
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
        settled = counts["records_dead_lettered"] + (
            counts["dry_run_users"] if self.settings.dry_run else counts["users_upserted"]
        )
        if status == "succeeded" and settled != counts["records_received"]:
            self.logger.warning(
                "Accounting mismatch: %d records received but %d upserted or dead-lettered",
                counts["records_received"],
                settled,
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
