"""Resources shared by every sink of one run: settings, client, pool, writers, stats."""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING

from target_insider_one import log_redaction
from target_insider_one.client import (  # InsiderFatalError: imported from here too
    InsiderClient,
    InsiderError,
    InsiderFatalError,
    UpsertResponse,
)
from target_insider_one.deadletter import DeadLetterWriter, JsonlWriter
from target_insider_one.log_redaction import RedactingFilter
from target_insider_one.retries import RetryPolicy
from target_insider_one.settlement import Ledger, RunStatus
from target_insider_one.summary import RunStats, log_summary

if TYPE_CHECKING:
    from collections.abc import Callable

    from target_insider_one.settings import Settings

__all__ = ["InsiderFatalError", "RedactingFilter", "Runtime"]

# The upsert and delivery threads take the GIL back after every socket call, and at
# CPython's default 5 ms switch interval each take waited behind the mapping loop: a batch
# stayed in flight longer than the next one took to map, and the main thread waited for it.
# 0.5 ms: phones off, 125,000 records against the sandbox, median 8.1 s -> 6.1 s (6 ABBA rounds).
GIL_SWITCH_INTERVAL_S = 0.0005


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
        self._delivery_lock = threading.Lock()
        self._delivery: Future[None] | None = None
        self._redacting = log_redaction.install((settings.api_key,), logger)
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)

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
            policy=RetryPolicy.from_settings(s),
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
    def _delivery_thread(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="insider-delivery")

    def deliver_in_background(self, deliver: Callable[[], None]) -> None:
        """Deliver a batch in the delivery thread once the previous batch is delivered.

        Waiting for Insider's answers was about a third of the target's wall time; now the
        main thread maps the next batch meanwhile. One batch at a time (any stream), so
        a profile's updates keep their order across batches and memory stays bounded.
        Everything a delivery touches (ledger, stats, dead letters) is locked, and STATE
        still comes from the ledger only.

        Args:
            deliver: Sends one batch (raises what stops the run).

        Raises:
            InsiderError: The previous batch's delivery stopped the run.
        """
        with self._delivery_lock:
            self._wait_for_delivery()
            self._delivery = self._delivery_thread.submit(deliver)

    def wait_for_delivery(self) -> None:
        """Wait until the batch being delivered is settled or known undelivered.

        Raises:
            InsiderError: Its delivery stopped the run.
        """
        with self._delivery_lock:
            self._wait_for_delivery()

    def _wait_for_delivery(self) -> None:
        delivery, self._delivery = self._delivery, None
        if delivery is not None:
            delivery.result()

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

    def finish(self, *, status: RunStatus, error: str | None = None) -> None:
        """Close resources, account for every record and log the summary (once).

        Args:
            status: How the run ended.
            error: Why the run stopped, logged last (still through the redacting filter).
        """
        with self._lock:
            if self.finished:
                return
            self.finished = True
        dead_letter_path = self._close()
        if self.settings.dry_run:
            self.logger.info(
                "Dry run: nothing was sent; request bodies written to %s",
                self.settings.dry_run_path,
            )
        mismatch = self.stats.close_books(
            stopped=status == RunStatus.FAILED, dry_run=self.settings.dry_run
        )
        if mismatch is not None:
            self.logger.warning(
                "Accounting mismatch: %d records received but %d upserted, dead-lettered or "
                "not delivered",
                *mismatch,
            )
        summary = self.stats.human_summary(
            status=status, dead_letter_path=dead_letter_path, dry_run=self.settings.dry_run
        )
        log_summary(self.logger, summary)
        self.stats.emit_metrics(status=status)
        if error is not None:
            self.logger.error("target-insider-one stopped: %s", error)
        log_redaction.uninstall(self._redacting)

    def _close(self) -> str | None:
        """Close what was opened (cached properties that were used).

        Returns:
            The dead-letter file's path, if anything was written to it.
        """
        if "_delivery_thread" in self.__dict__:  # a run that failed elsewhere: let it end
            self._delivery_thread.shutdown(wait=True)
        if "executor" in self.__dict__:
            self.executor.shutdown(wait=True, cancel_futures=True)
        if "client" in self.__dict__:
            self.client.close()
        if "dry_run_writer" in self.__dict__:
            self.dry_run_writer.close()
        if "dead_letters" not in self.__dict__:
            return None
        self.dead_letters.close()
        if self.dead_letters.lines or self.dead_letters.duplicates:
            return str(self.dead_letters.path)
        return None
