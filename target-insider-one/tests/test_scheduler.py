"""The ordered request scheduler: concurrency that never reorders one profile's updates."""

from concurrent.futures import Future

from hypothesis import given, settings
from hypothesis import strategies as st
from target_insider_one.payload import RequestPlan
from target_insider_one.scheduler import Item, RequestScheduler


def batch(profiles_per_request: list[list[str]]):
    items, plans = [], []
    for request, profiles in enumerate(profiles_per_request):
        indexes = []
        for profile in profiles:
            indexes.append(len(items))
            items.append(Item({}, b"", (f"uuid:{profile}",), len(items)))
        plans.append(RequestPlan(indexes, f"request-{request}".encode()))
    return plans, items


class Pool:
    """Futures the test resolves by hand, in any order."""

    def __init__(self):
        self.running: dict[bytes, Future] = {}
        self.started: list[bytes] = []

    def submit(self, body: bytes) -> Future:
        future = Future()
        future.set_running_or_notify_cancel()
        self.running[body] = future
        self.started.append(body)
        return future

    def complete(self, body: bytes) -> None:
        self.running.pop(body).set_result(None)


def test_a_request_waits_for_the_earlier_one_with_the_same_profile():
    plans, items = batch([["a"], ["a", "b"], ["c"]])
    scheduler, pool = RequestScheduler(plans, items), Pool()
    assert scheduler.start_ready(pool.submit)
    assert pool.started == [b"request-0", b"request-2"]
    pool.complete(b"request-0")
    for job_id, _future, _plan in scheduler.completed():
        scheduler.finish(job_id)
    assert scheduler.start_ready(pool.submit)
    assert pool.started == [b"request-0", b"request-2", b"request-1"]


def test_a_split_request_sends_its_halves_in_order_before_its_dependants():
    plans, items = batch([["a", "b"], ["b"]])
    scheduler, pool = RequestScheduler(plans, items), Pool()
    scheduler.start_ready(pool.submit)
    pool.complete(b"request-0")
    for job_id, _future, _plan in scheduler.completed():
        scheduler.split(job_id, [RequestPlan([0], b"half-1"), RequestPlan([1], b"half-2")])
    scheduler.start_ready(pool.submit)
    assert pool.started == [b"request-0", b"half-1"]  # request-1 waits for both halves
    pool.complete(b"half-1")
    for job_id, _future, _plan in scheduler.completed():
        scheduler.finish(job_id)
    scheduler.start_ready(pool.submit)
    assert pool.started[-1] == b"half-2"
    pool.complete(b"half-2")
    for job_id, _future, _plan in scheduler.completed():
        scheduler.finish(job_id)
    scheduler.start_ready(pool.submit)
    assert pool.started[-1] == b"request-1"


def test_a_stopping_run_leaves_the_rest_unsent():
    plans, items = batch([["a"], ["a", "b"]])
    scheduler = RequestScheduler(plans, items)
    assert not scheduler.start_ready(lambda _body: None)
    assert scheduler.unsent_items() == 3


@given(
    requests=st.lists(st.lists(st.sampled_from("abcd"), min_size=1, max_size=3), max_size=8),
    order=st.randoms(use_true_random=False),
)
@settings(max_examples=100)
def test_requests_of_one_profile_never_overlap_and_start_in_batch_order(requests, order):
    plans, items = batch(requests)
    scheduler, pool = RequestScheduler(plans, items), Pool()
    profiles = {plan.body: {items[i].keys[0] for i in plan.items} for plan in plans}
    while True:
        scheduler.start_ready(pool.submit)
        running = list(pool.running)
        for one in running:  # no two requests in flight share a profile
            for other in running:
                assert one == other or not profiles[one] & profiles[other]
        if not running:
            break
        pool.complete(order.choice(running))
        for job_id, _future, _plan in scheduler.completed():
            scheduler.finish(job_id)
    assert sorted(pool.started) == sorted(plan.body for plan in plans)
    for key in {k for keys in profiles.values() for k in keys}:
        touching = [p.body for p in plans if key in profiles[p.body]]
        assert [b for b in pool.started if b in touching] == touching
