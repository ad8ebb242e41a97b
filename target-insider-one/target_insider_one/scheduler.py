"""Ordered request scheduling: concurrent requests that never reorder one profile's updates.

A request that shares a profile (an identifier value) with an earlier request of the batch
starts only after that one has finished; a request split in two sends its halves in order,
and whatever waited for it waits for both halves. Nothing here knows HTTP: the sink passes
a ``submit`` function and decides what a finished request means.
"""

from __future__ import annotations

import itertools
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from target_insider_one.payload import RequestPlan


@dataclass
class Item:
    """One mapped record waiting in a batch."""

    record: dict[str, Any]
    data: bytes
    keys: tuple[str, ...]
    number: int  # in the run's ledger


@dataclass
class _Job:
    plan: RequestPlan
    deps: set[int] = field(default_factory=set)


def identifier_keys(identifiers: dict[str, Any]) -> tuple[str, ...]:
    """Keys that make two users the same profile in Insider (shared identifier values).

    Args:
        identifiers: The user's ``identifiers`` object.

    Returns:
        Keys such as ``email:a@b.co`` and ``custom.loyalty_id:42``.
    """
    custom = identifiers.get("custom")
    if custom is None:  # the common case, once per record
        return tuple([f"{k}:{v}" for k, v in identifiers.items()])
    keys = [f"{k}:{v}" for k, v in identifiers.items() if k != "custom"]
    keys += [f"custom.{k}:{v}" for k, v in custom.items()]
    return tuple(keys)


def request_dependencies(plans: list[RequestPlan], items: list[Item]) -> list[set[int]]:
    """For each request, the earlier requests that touch one of the same profiles.

    Such requests must not overlap in time, so that a later record for a profile is never
    applied before an earlier one.

    Args:
        plans: Requests in batch order.
        items: The batch's items.

    Returns:
        Per request, the indexes of the requests it must wait for.
    """
    last: dict[str, int] = {}
    result: list[set[int]] = []
    for index, plan in enumerate(plans):
        deps: set[int] = set()
        for item_index in plan.items:
            for key in items[item_index].keys:
                previous = last.get(key)
                if previous is not None and previous != index:
                    deps.add(previous)
                last[key] = index
        result.append(deps)
    return result


class RequestScheduler:
    """The requests of one batch: which may start, which are in flight, which are done."""

    def __init__(self, plans: list[RequestPlan], items: list[Item]) -> None:
        """Plan the batch's requests with their dependencies.

        Args:
            plans: Requests in batch order.
            items: The batch's items (their identifier keys order the requests).
        """
        self._ids = itertools.count()
        self._jobs: dict[int, _Job] = {}
        for plan, deps in zip(plans, request_dependencies(plans, items), strict=True):
            self._jobs[next(self._ids)] = _Job(plan, deps)
        self._waiting = list(self._jobs)
        self._finished: set[int] = set()
        self._in_flight: dict[Future[Any], int] = {}

    @property
    def in_flight(self) -> bool:
        """Whether a request is running."""
        return bool(self._in_flight)

    @property
    def waiting(self) -> bool:
        """Whether a request has not started yet."""
        return bool(self._waiting)

    def start_ready(self, submit: Callable[[bytes], Future[Any] | None]) -> bool:
        """Start every waiting request whose predecessors have finished.

        Args:
            submit: Starts one request body; None when the run is stopping.

        Returns:
            False when ``submit`` refused (the run is stopping), else True.
        """
        for job_id in [j for j in self._waiting if self._jobs[j].deps <= self._finished]:
            future = submit(self._jobs[job_id].plan.body)
            if future is None:
                return False
            self._waiting.remove(job_id)
            self._in_flight[future] = job_id
        return True

    def completed(self) -> Iterator[tuple[int, Future[Any], RequestPlan]]:
        """Wait for at least one request in flight to end; yield each that ended.

        A cancelled request goes back to waiting (it was never sent). The caller reports
        each other one with :meth:`finish` or :meth:`split`.

        Yields:
            The request's id, its future and the request.
        """
        done, _ = wait(list(self._in_flight), return_when=FIRST_COMPLETED)
        for future in done:
            job_id = self._in_flight.pop(future)
            if future.cancelled():
                self._waiting.append(job_id)
                continue
            yield job_id, future, self._jobs[job_id].plan

    def finish(self, job_id: int) -> None:
        """A request is settled: requests waiting for it may start.

        Args:
            job_id: As yielded by :meth:`completed`.
        """
        self._finished.add(job_id)

    def split(self, job_id: int, halves: list[RequestPlan]) -> None:
        """Send a request as two halves, in order.

        The first half runs next; the second takes over the request's id, so requests
        waiting for it wait for both halves.

        Args:
            job_id: As yielded by :meth:`completed`.
            halves: The two halves, in order.
        """
        first = next(self._ids)
        self._jobs[first] = _Job(halves[0])
        self._jobs[job_id] = _Job(halves[1], {first})
        self._waiting[:0] = [first, job_id]

    def cancel_in_flight(self) -> None:
        """Cancel the requests that have not started running (they count as unsent)."""
        for future in self._in_flight:
            future.cancel()

    def unsent_items(self) -> int:
        """Records in requests that never started.

        Returns:
            Their number.
        """
        return sum(len(self._jobs[j].plan.items) for j in self._waiting)
