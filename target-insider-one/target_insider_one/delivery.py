"""Delivering one batch: send its requests in order, then settle each of its records.

Each record ends as exactly one of: upserted, dead-lettered (rejected for its own reason)
or undelivered (the next run re-sends it), reported to the run's ledger and stats. The
order of the requests is :mod:`target_insider_one.scheduler`; what a status means is
:mod:`target_insider_one.status_policy`, applied by the client, whose errors arrive here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from target_insider_one.client import (
    InsiderAuthError,
    InsiderBadRequestError,
    InsiderConfigError,
    InsiderError,
    InsiderRequestFailedError,
    UpsertResponse,
)
from target_insider_one.payload import RequestPlan, build_body
from target_insider_one.runtime import InsiderFatalError
from target_insider_one.scheduler import RequestScheduler
from target_insider_one.settlement import DeadLetterReason, ExitCode, Undelivered, settle_response

if TYPE_CHECKING:
    import logging
    from concurrent.futures import Future

    from target_insider_one.runtime import Runtime
    from target_insider_one.scheduler import Item


class DeadLetter(Protocol):
    """Writes one record to the dead-letter file and counts it (the sink's)."""

    def __call__(  # noqa: D102
        self,
        record: dict[str, Any],
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        batch_id: str | None = None,
    ) -> None: ...


class BatchDelivery:
    """Sends one batch's requests and settles every record in them."""

    def __init__(
        self,
        runtime: Runtime,
        stream_name: str,
        logger: logging.Logger,
        dead_letter: DeadLetter,
        batch: tuple[list[Item], str | None],
    ) -> None:
        """Prepare the delivery.

        Args:
            runtime: The run's shared resources.
            stream_name: For messages.
            logger: The sink's logger.
            dead_letter: Writes and counts one dead letter.
            batch: The batch's items and its id.
        """
        self.runtime = runtime
        self.settings = runtime.settings
        self.stream_name = stream_name
        self.logger = logger
        self.dead_letter = dead_letter
        self.items, self.batch_id = batch

    def send(self, plans: list[RequestPlan]) -> None:
        """Run the requests concurrently (bounded), keeping per-profile order.

        Args:
            plans: The batch's requests.

        Raises:
            InsiderError: The run stops (fast_fail, credentials, wrong endpoint, or another
                stream stopped it); records never sent are counted as undelivered.
        """
        scheduler = RequestScheduler(plans, self.items)
        fatal: InsiderError | None = None
        while scheduler.in_flight or (scheduler.waiting and fatal is None):
            if fatal is None and not scheduler.start_ready(self.runtime.submit):
                fatal = self.runtime.fatal  # another stream stopped the run
            if not scheduler.in_flight:  # pragma: no cover - dependencies always point backwards
                break
            for job_id, future, plan in scheduler.completed():
                error, halves = self._outcome(future, plan, stopping=fatal is not None)
                if halves:
                    scheduler.split(job_id, halves)
                    continue
                scheduler.finish(job_id)
                if error is not None:
                    fatal = fatal or error
                    self.runtime.stop(error)
                if fatal is not None:
                    scheduler.cancel_in_flight()
        if fatal is not None:
            self._count_unsent(scheduler.unsent_items())
            raise fatal

    def _count_unsent(self, unsent: int) -> None:
        if unsent:
            self.runtime.stats.undelivered(Undelivered.RUN_STOPPED, unsent)
            self.logger.error(
                "%d records of stream %r were not sent because the run is stopping",
                unsent,
                self.stream_name,
            )

    def _outcome(
        self, future: Future[UpsertResponse], plan: RequestPlan, *, stopping: bool
    ) -> tuple[InsiderError | None, list[RequestPlan]]:
        """Settle one finished request.

        Returns:
            A fatal error (or None) and requests to send next (the halves of a split).
        """
        try:
            response = future.result()
        except InsiderBadRequestError as exc:
            if exc.too_large and len(plan.items) > 1 and not stopping:
                return None, self._halves(plan, exc)
            reason = (
                DeadLetterReason.REQUEST_TOO_LARGE
                if exc.too_large
                else DeadLetterReason.BAD_REQUEST
            )
            self._reject(plan, reason, exc)
            return self._fast_fail_error(plan, exc, ExitCode.STOPPED), []
        except (InsiderAuthError, InsiderConfigError) as exc:
            return InsiderFatalError(exc.message, exc.status), []
        except InsiderRequestFailedError as exc:
            self._undeliver(plan.items, exc.reason, exc.message)
            return self._fast_fail_error(plan, exc, ExitCode.UNDELIVERED), []
        self._settle(plan, response)
        return None, []

    def _halves(self, plan: RequestPlan, exc: InsiderBadRequestError) -> list[RequestPlan]:
        self.logger.warning(
            "Insider refused a request of %d users as too large (%s); splitting it",
            len(plan.items),
            exc.message,
        )
        half = len(plan.items) // 2
        return [
            RequestPlan(
                part,
                build_body(
                    [self.items[i].data for i in part],
                    self.settings.skip_hook,
                    self.settings.not_append,
                ),
            )
            for part in (plan.items[:half], plan.items[half:])
        ]

    def _fast_fail_error(
        self, plan: RequestPlan, exc: InsiderError, exit_code: ExitCode
    ) -> InsiderError | None:
        if not self.settings.fast_fail:
            return None
        return InsiderFatalError(
            f"fast_fail is on and a request of {len(plan.items)} users for stream "
            f"{self.stream_name!r} failed: {exc.message}. The run stops here: no STATE past "
            "its records was emitted, so the next run re-sends them from the last bookmark.",
            exc.status,
            exit_code,
        )

    def _reject(self, plan: RequestPlan, reason: DeadLetterReason, exc: InsiderError) -> None:
        """Dead-letter every record of a request Insider refused as a whole (400/422)."""
        self.runtime.stats.add(failed_requests=1)
        self.logger.error(
            "Insider refused a request of %d users for stream %r (%s: %s); %s",
            len(plan.items),
            self.stream_name,
            reason,
            exc.message,
            "stopping (fast_fail)"
            if self.settings.fast_fail
            else "its records are dead-lettered and the run continues",
        )
        details = {"status": exc.status, "users_in_request": len(plan.items)}
        for index in plan.items:
            self.dead_letter(self.items[index].record, reason, exc.message, details, self.batch_id)
        self.runtime.ledger.settle(self.items[index].number for index in plan.items)

    def _undeliver(self, indexes: list[int], reason: Undelivered, message: str) -> None:
        """Records whose delivery is unknown: never dead-lettered, STATE stops before them."""
        self.runtime.stats.add(failed_requests=1)
        self.runtime.stats.undelivered(reason, len(indexes))
        self.runtime.ledger.undeliver(self.items[index].number for index in indexes)
        self.logger.error(
            "%d records of stream %r were not delivered (%s: %s); no STATE will pass them, "
            "so the next run re-sends them; %s",
            len(indexes),
            self.stream_name,
            reason,
            message,
            "stopping (fast_fail)"
            if self.settings.fast_fail
            else "the run delivers the other batches, then exits non-zero",
        )

    def _settle(self, plan: RequestPlan, response: UpsertResponse) -> None:
        """Apply a 2xx answer: dead-letter the users Insider rejected, settle the others."""
        outcome = settle_response(response, len(plan.items))
        for position, errors in sorted(outcome.rejected.items()):
            message = "; ".join(m for messages in errors.values() for m in messages)
            self.dead_letter(
                self.items[plan.items[position]].record,
                DeadLetterReason.REJECTED_BY_INSIDER,
                message or "rejected by Insider",
                {"errors": errors, "user_index": position, "status": response.status},
                self.batch_id,
            )
        self.runtime.ledger.settle(self.items[plan.items[p]].number for p in outcome.rejected)
        if outcome.unconfirmed:
            self.logger.warning(
                "Insider reported %s successful and %d failed of %d users but named %d "
                "failures (unmatched error keys: %s)",
                "no" if response.successful is None else response.successful,
                response.fail_count,
                len(plan.items),
                len(outcome.rejected),
                ", ".join(outcome.unattributed) or "none",
            )
            unconfirmed = [plan.items[p] for p in outcome.unconfirmed]
            self._undeliver(unconfirmed, Undelivered.UNCONFIRMED, "Insider's counts do not add up")
        elif outcome.unattributed:
            self.logger.warning(
                "Insider returned error keys that name no user of the request: %s",
                ", ".join(outcome.unattributed),
            )
        self.runtime.ledger.settle(self.items[plan.items[p]].number for p in outcome.upserted)
        self.runtime.stats.add(
            users_upserted=len(outcome.upserted), users_rejected_by_insider=len(outcome.rejected)
        )
