"""The phone worker: same results as inline, same order, and a failing worker loses nothing."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from target_insider_one import phone_pool
from target_insider_one.phone import PhoneNumberError, PhoneOptions, to_e164
from target_insider_one.phone_pool import PhonePrefetch, normalise_values

from .conftest import customer, record_msg, schema_msg, state_msg
from .e2e_helpers import RunningCli

GB = PhoneOptions(default_region="GB")
PHONE_TEXT = st.text(alphabet="0123456789+()- .xet:#ABC", max_size=24)
SAMPLES = [
    "020 7200 0000",
    "00 44 20 3200 0001",
    "+12022000002",
    "+49 (0)30 2000 003",
    "202-200-0037 ext. 771",
    "1-800-FLOWERS",
    "0532 200 00 52",
    "+4477002000023",
    "12",
    "",
]


def inline(value: object, options: PhoneOptions = GB) -> tuple[str, str]:
    try:
        return to_e164(value, options), ""
    except PhoneNumberError as exc:
        return "", exc.reason


def answered(prefetch: PhonePrefetch, value: object) -> tuple[str, str]:
    try:
        return prefetch.to_e164(value, GB), ""
    except PhoneNumberError as exc:
        return "", exc.reason


def messages(values: list[object]) -> list[dict]:
    return [record_msg(customer(i, Phone=v)) for i, v in enumerate(values)]


@settings(max_examples=200)
@given(st.lists(PHONE_TEXT, max_size=20))
def test_worker_function_gives_the_inline_results(values):
    results = normalise_values(values, GB)
    assert [(e164, reason) for e164, reason, _ in results] == [inline(v) for v in values]


@settings(max_examples=100)
@given(st.lists(PHONE_TEXT, max_size=12), st.lists(PHONE_TEXT, max_size=12))
def test_answers_from_the_table_equal_inline_even_for_values_not_in_it(known, asked):
    prefetch = PhonePrefetch(GB, ("Phone",), cores=1)
    prefetch._known = dict(zip(known, normalise_values(known, GB), strict=True))
    for value in [*known, *asked, 5, None]:
        assert answered(prefetch, value) == inline(value)


def phone_config(sandbox, **extra) -> dict:
    """A target config with a phone identifier normalised in region GB."""
    return sandbox.target_config(
        identifier_mappings=[
            {"type": "uuid", "field": "SubscriberKey"},
            {"type": "phone_number", "field": "Phone"},
        ],
        attribute_mappings={"FirstName": "name"},
        phone_default_region="GB",
        **extra,
    )


def worker_up(prefetch: PhonePrefetch) -> PhonePrefetch:
    """Start the real worker and wait until it answers, so that the next chunk goes to it."""
    prefetch._worker_up()
    assert prefetch._started is not None, "the worker could not be started"
    prefetch._started.result(timeout=60)
    assert prefetch._worker_up()
    return prefetch


@pytest.fixture
def prefetch():
    pool = PhonePrefetch(GB, ("Phone",), chunk_records=4, cores=2)
    yield pool
    pool.close()


@pytest.fixture
def started(prefetch):
    return worker_up(prefetch)


def test_chunks_are_normalised_inline_while_the_worker_starts(prefetch):
    # Its imports take about half a second, in which the main process gets through several
    # chunks: waiting for it made a 10,000-record run slower than no worker at all.
    sent = messages(SAMPLES[:8])
    released = [ready for message in sent for ready in prefetch.add(message)]
    assert prefetch._pool is not None  # the first full chunk started it
    assert released == sent  # nothing held: the worker was not up yet
    assert prefetch.drain() == []
    prefetch._started.result(timeout=60)
    more = messages(SAMPLES[:8])
    assert [ready for message in more for ready in prefetch.add(message)] == more[:4]
    assert prefetch.drain() == more[4:]  # once it is up, a chunk waits in it


def test_real_worker_keeps_order_and_gives_inline_results(started):
    prefetch = started
    sent = messages([SAMPLES[i % len(SAMPLES)] for i in range(23)])
    released = []
    answers = {}
    for message in sent:
        for ready in prefetch.add(message):
            released.append(ready)
            answers[id(ready)] = answered(prefetch, ready["record"]["Phone"])
        assert prefetch._pool is None or prefetch.enabled
    assert prefetch._pool is not None
    assert prefetch._known
    for ready in prefetch.drain():
        released.append(ready)
        answers[id(ready)] = answered(prefetch, ready["record"]["Phone"])
    assert released == sent  # every record, once, in input order
    assert [answers[id(m)] for m in released] == [inline(m["record"]["Phone"]) for m in sent]


def test_records_are_held_only_while_a_chunk_is_in_the_worker(started):
    prefetch = started
    sent = messages(SAMPLES[:8])
    released = [ready for message in sent for ready in prefetch.add(message)]
    assert released == sent[:4]  # chunk 1 released once chunk 2 went to the worker
    assert prefetch.drain() == sent[4:]
    assert prefetch.drain() == []


def test_a_state_per_tap_page_is_held_in_line_and_leaves_phones_to_the_worker(
    requests_mock, make_config, monkeypatch
):
    # The tap emits a STATE after each page; the target holds it in line with the records
    # for the worker instead of draining them (which normalised the filling chunk inline at
    # every page). Only the chunk filling at the end of input is left to the main process.
    from target_insider_one import target as target_module

    from .conftest import UPSERT_URL, ok_callback, run_target, sent_bodies

    inline_calls = []

    def counting_to_e164(value: object, options: PhoneOptions) -> str:
        inline_calls.append(value)
        return to_e164(value, options)

    chunk, page, pages = 20, 50, 4
    monkeypatch.setattr(phone_pool, "to_e164", counting_to_e164)
    monkeypatch.setattr(
        target_module,
        "PhonePrefetch",
        lambda *args, **kwargs: worker_up(
            PhonePrefetch(*args, chunk_records=chunk, cores=2, **kwargs)
        ),
    )
    requests_mock.post(UPSERT_URL, json=ok_callback)
    values = [f"020 7200 {i:04d}" for i in range(page * pages)]  # each its own phone
    msgs = [schema_msg()]
    for number in range(pages):
        start = number * page
        msgs += [
            record_msg(customer(start + i, Phone=v)) for i, v in enumerate(values[start:][:page])
        ]
        msgs.append(state_msg(number))
    result = run_target(make_config(batch_size_rows=30, max_concurrent_requests=2), msgs)
    phones = {
        u["identifiers"]["uuid"]: u["identifiers"].get("phone_number")
        for body in sent_bodies(requests_mock)
        for u in body["users"]
    }
    options = result.target.runtime.settings.phone
    expected = {f"CUST-{i:06d}": inline(v, options)[0] or None for i, v in enumerate(values)}
    assert phones == expected
    assert [s["bookmarks"]["Customers"]["v"] for s in result.states][-1] == pages - 1
    assert 0 < len(inline_calls) <= chunk  # the worker ran; the rest was the last chunk


class _FailingPool:
    def __init__(self, outcome: BaseException | list) -> None:
        self.outcome = outcome

    def submit(self, *_args) -> Future:
        future: Future = Future()
        if isinstance(self.outcome, BaseException):
            future.set_exception(self.outcome)
        else:
            future.set_result(self.outcome)
        return future

    def shutdown(self, **_kwargs) -> None:
        pass


@pytest.mark.parametrize(
    "outcome",
    [BrokenProcessPool("worker died holding +442072000000"), [("+15550000000", "", "")]],
    ids=["broken-pool", "wrong-length-answer"],
)
def test_failing_worker_falls_back_to_inline_and_loses_nothing(prefetch, caplog, outcome):
    prefetch._pool = _FailingPool(outcome)
    sent = messages(SAMPLES * 2)
    released = []
    with caplog.at_level(logging.WARNING):
        for message in sent:
            for ready in prefetch.add(message):
                released.append((ready, answered(prefetch, ready["record"]["Phone"])))
        released += [(m, answered(prefetch, m["record"]["Phone"])) for m in prefetch.drain()]
    assert [m for m, _ in released] == sent
    assert [a for _, a in released] == [inline(m["record"]["Phone"]) for m in sent]
    assert not prefetch.enabled
    assert "phone number worker process failed" in caplog.text
    assert "+44" not in caplog.text
    assert "+1555" not in caplog.text


def test_killed_worker_process_falls_back_to_inline(started):
    prefetch = started
    sent = messages([SAMPLES[i % len(SAMPLES)] for i in range(16)])
    released = []
    for message in sent[:4]:  # a chunk in the worker
        released += [(m, answered(prefetch, m["record"]["Phone"])) for m in prefetch.add(message)]
    pool = prefetch._pool
    assert pool is not None
    for pid in list(pool._processes):
        os.kill(pid, signal.SIGKILL)
    for message in sent[4:]:
        released += [(m, answered(prefetch, m["record"]["Phone"])) for m in prefetch.add(message)]
    released += [(m, answered(prefetch, m["record"]["Phone"])) for m in prefetch.drain()]
    assert not prefetch.enabled
    assert [m for m, _ in released] == sent
    assert [a for _, a in released] == [inline(m["record"]["Phone"]) for m in sent]


def test_one_core_or_no_phone_field_starts_no_worker():
    for prefetch in (PhonePrefetch(GB, ("Phone",), cores=1), PhonePrefetch(GB, (), cores=2)):
        sent = messages(SAMPLES)
        assert [r for m in sent for r in prefetch.add(m)] == sent
        assert prefetch._pool is None


WORKER_UP = "The phone number worker process is up"


@pytest.mark.e2e
def test_cli_with_the_worker_sends_each_record_its_own_phone(sandbox, tmp_path):
    """Chunks go to the worker once it is up, STATE in between, real HTTP."""
    formats = ("+4479111{:05d}", "07911 1{:05d}", "0044 7911 1{:05d}", "07911 1{:05d} ext 9")
    phones = [formats[i % 4].format(i) if i % 9 else "1-800-FLOWERS" for i in range(5500)]
    msgs = [schema_msg()]
    for i, phone in enumerate(phones):
        msgs.append(record_msg(customer(i, Phone=phone)))
        if i % 1000 == 999:
            msgs.append(state_msg(i))
    msgs.append(state_msg("end"))
    # The first chunk starts the worker; the rest is sent once it is up, so it does them.
    run = RunningCli(phone_config(sandbox), msgs[:1001], tmp_path, more_to_come=True)
    try:
        assert run.wait_until(lambda: WORKER_UP in run.stderr, timeout=120), run.stderr
        run.send(msgs[1001:])
        assert run.finish(timeout=300) == 0, run.stderr
    finally:
        if run.proc.poll() is None:  # a failed wait: no target left behind with stdin open
            run.proc.kill()
    assert [s["bookmarks"]["Customers"]["v"] for s in run.states][-1] == "end"
    profiles = {p["identifiers"]["uuid"]: p["identifiers"] for p in sandbox.profiles()}
    assert len(profiles) == len(phones)
    for i, phone in enumerate(phones):
        expected, _ = inline(phone)
        assert profiles[f"CUST-{i:06d}"].get("phone_number", "") == expected, i


class _BreaksAtSecondSubmit:
    """A pool whose worker dies after taking the first chunk: the second submit fails."""

    def __init__(self) -> None:
        self.first: Future = Future()

    def submit(self, fn, *_args) -> Future:
        if fn is os.getpid:  # the worker's start-up answer
            up: Future = Future()
            up.set_result(1)
            return up
        if self.first.running() or self.first.done():
            self.first.set_exception(BrokenProcessPool("worker died"))
            raise BrokenProcessPool("worker died")
        self.first.set_running_or_notify_cancel()
        return self.first

    def shutdown(self, **_kwargs) -> None:
        pass


def test_a_pool_that_breaks_at_submit_still_releases_every_chunk_in_order(prefetch):
    # The chunk held in the worker comes before the one whose submit failed: released the
    # other way round, a STATE of the later chunk would be noted before the earlier records
    # are opened in the ledger, and could pass them.
    prefetch._pool = _BreaksAtSecondSubmit()
    sent = messages(SAMPLES * 2)
    sent.insert(6, {"type": "STATE", "value": {"bookmarks": {"x": 1}}})
    released = [m for message in sent for m in prefetch.add(message)] + prefetch.drain()
    assert released == sent
    assert not prefetch.enabled


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (the phone worker, multiprocessing's tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _until(condition, timeout: float = 60.0) -> bool:
    """Poll an observable condition until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.e2e
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_sigterm_while_chunks_are_held_leaves_no_worker_holding_stdout(sandbox, tmp_path):
    # The target exits at once on SIGTERM (os._exit, no pool shutdown). A worker that
    # outlived it kept the target's stdout open, so an orchestrator reading STATE until end of
    # file (Meltano) waited for ever.
    lines = [schema_msg()]
    for i in range(2500):
        lines.append(record_msg(customer(i, Phone=f"07911 1{i:05d}")))
        if i % 1200 == 1199:  # rarer than a chunk: a STATE with nothing in the worker drains it
            lines.append(state_msg(i))
    # The first chunk starts the worker.
    run = RunningCli(phone_config(sandbox), lines[:1001], tmp_path, more_to_come=True)
    proc = run.proc
    workers: list[int] = []
    try:
        assert run.wait_until(lambda: WORKER_UP in run.stderr, timeout=60), "no worker came up"
        run.send(lines[1001:], last=False)  # stdin stays open: the last chunks stay held
        assert _until(lambda: _children(proc.pid)), "no phone worker started"
        workers = _children(proc.pid)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        assert run.stdout_closed(timeout=30), "the target's stdout is still open after it exited"
        assert _until(lambda: not [w for w in workers if _alive(w)], 30), "a worker outlived it"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in workers:  # this test's own processes, by pid
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    delivered = {p["identifiers"]["uuid"] for p in sandbox.profiles()}
    for state in run.states:
        last = state["bookmarks"]["Customers"]["v"]
        assert all(f"CUST-{i:06d}" in delivered for i in range(last + 1)), last


# -- every failure of the worker, at every point: input order and inline answers ------------

MODES = ("ok", "short", "long", "raise_result", "raise_submit", "pending_then_cancel", "runtime")


class _ScriptedPool:
    """Each submit behaves as the next mode of a script (then 'ok')."""

    def __init__(self, script: list[str]) -> None:
        self.script = list(script)
        self.pending: list[Future] = []

    def submit(self, fn, *args) -> Future:
        mode = self.script.pop(0) if self.script else "ok"
        if mode == "raise_submit":
            raise BrokenProcessPool("worker died")
        if mode == "runtime":
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: Future = Future()
        results = fn(*args)
        if fn is os.getpid and mode in {"short", "long"}:  # the start-up call has no list
            future.set_result(results)
        elif mode == "short":
            future.set_result(results[:-1] if results else [("", "x", "y")])
        elif mode == "long":
            future.set_result([*results, ("", "x", "y")])
        elif mode == "raise_result":
            future.set_exception(BrokenProcessPool("worker died"))
        elif mode == "pending_then_cancel":
            future.cancel()  # as cancel_futures=True leaves a chunk not yet started
        else:
            future.set_result(results)
        return future

    def shutdown(self, **_kwargs) -> None:
        for future in self.pending:
            future.cancel()


EVENTS = st.lists(st.sampled_from(["R", "R", "R", "S", "D"]), max_size=40)


@settings(max_examples=300, deadline=None)
@given(EVENTS, st.lists(st.sampled_from(MODES), max_size=6), st.integers(1, 4))
def test_every_failure_mode_at_every_point_keeps_input_order(events, script, chunk):
    prefetch = PhonePrefetch(GB, ("Phone",), chunk_records=chunk, cores=2)
    prefetch._pool = _ScriptedPool(script)
    sent: list[dict] = []
    released: list[dict] = []
    n = 0
    for event in events:
        if event == "D":  # a SCHEMA / ACTIVATE_VERSION / BATCH: everything held first
            released += prefetch.drain()
            assert released == sent
            continue
        if event == "R":
            message = messages([SAMPLES[n % len(SAMPLES)]])[0]
            message["record"]["SubscriberKey"] = f"K{n}"
        else:
            message = {"type": "STATE", "value": {"n": n}}
        n += 1
        sent.append(message)
        out = prefetch.add(message)
        released += out
        # a STATE is released only after every message before it
        for i, m in enumerate(released):
            assert m is sent[i]
        # answers for what was just released equal inline answers
        for m in out:
            if m["type"] == "RECORD":
                value = m["record"]["Phone"]
                assert answered(prefetch, value) == inline(value)
    released += prefetch.drain()
    assert released == sent


class _StartingPool(_ScriptedPool):
    """The worker's start-up call stays pending until the test settles it (or the worker dies).

    Like the real pool, the call counts as running once queued: it cannot be cancelled.
    """

    def __init__(self, script: list[str]) -> None:
        super().__init__(script)
        self.starting: Future | None = None
        self.dead = False
        self.chunks_before_up = 0

    def submit(self, fn, *args) -> Future:
        if self.dead:
            raise BrokenProcessPool("worker died")
        if fn is os.getpid:
            self.starting = Future()
            self.starting.set_running_or_notify_cancel()
            return self.starting
        if self.starting is None or not self.starting.done():
            self.chunks_before_up += 1
        return super().submit(fn, *args)

    def settle(self, outcome: str) -> None:
        if self.starting is None or self.starting.done():
            return
        if outcome == "up":
            self.starting.set_result(1)
        else:  # the worker died while starting: the pool is broken
            self.dead = outcome == "died"
            self.starting.set_exception(BrokenProcessPool("worker died while starting"))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(["R", "R", "R", "R", "S", "D", "U"]), max_size=50),
    st.sampled_from(["up", "failed", "died"]),
    st.lists(st.sampled_from(MODES), max_size=5),
    st.integers(1, 4),
)
def test_a_worker_still_starting_holds_nothing_and_any_start_outcome_keeps_order(
    events, outcome, script, chunk
):
    prefetch = PhonePrefetch(GB, ("Phone",), chunk_records=chunk, cores=2)
    pool = _StartingPool(script)
    prefetch._pool = pool
    sent: list[dict] = []
    released: list[dict] = []
    for n, event in enumerate(events):
        if event == "U":  # the start-up call answers, or fails
            pool.settle(outcome)
            continue
        if event == "D":
            released += prefetch.drain()
            assert released == sent
            continue
        message = messages([SAMPLES[n % len(SAMPLES)]])[0] if event == "R" else state_msg(n)
        sent.append(message)
        out = prefetch.add(message)
        released += out
        assert all(a is b for a, b in zip(released, sent, strict=False))
        for m in out:
            if m["type"] == "RECORD":
                assert answered(prefetch, m["record"]["Phone"]) == inline(m["record"]["Phone"])
        if pool.starting is not None and not pool.starting.done():
            assert len(sent) - len(released) < chunk  # nothing waits for a starting worker
    released += prefetch.drain()
    assert released == sent
    assert pool.chunks_before_up == 0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_closing_while_the_worker_starts_kills_it(prefetch):
    # Its start-up call cannot be cancelled once queued: Python's exit waited for it.
    for message in messages(SAMPLES[:4]):  # a full chunk: starts the worker
        prefetch.add(message)
    assert prefetch._started is not None
    workers = list(prefetch._pool._processes)
    assert workers
    assert not prefetch._started.done()  # still importing
    prefetch.close()
    assert _until(lambda: not [pid for pid in workers if _alive(pid)], 30), "worker still alive"
    # Killed before it answered (left alone, it would have answered with its pid, then exited).
    assert isinstance(prefetch._started.exception(timeout=30), BrokenProcessPool)
