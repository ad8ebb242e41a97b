"""Pages read ahead (prefetch.py), the 50200 gate, and thread-safe tokens: no HTTP server."""

import logging
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tap_sfmc_de.auth import TokenManager
from tap_sfmc_de.client import HttpClient
from tap_sfmc_de.concurrency_gate import ConcurrencyGate
from tap_sfmc_de.page_reader import BudgetSpentError, PageReader
from tap_sfmc_de.prefetch import RESERVE, PageRequest, Prefetcher
from tap_sfmc_de.rowset import RowsetPage
from tap_sfmc_de.settings import Settings
from tap_sfmc_de_testkit import AUTH, SERVER_NOW, token_json
from test_windows import make_de, run

LOG = logging.getLogger("test")
ROWS, SIZE = 95, 10
LAST = 10  # ceil(ROWS / SIZE)


class Pages:
    """A thread-safe fetcher of consistent pages whose rows name the request they answer."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent = []

    def fetch(self, *, page, page_size, filter_expr=None, order_by=None, before_resend=None):
        with self.lock:
            self.sent.append((page, filter_expr))
        first = (page - 1) * page_size
        rows = max(0, min(page_size, ROWS - first))
        items = [{"keys": {"id": f"{filter_expr}:{page}:{i}"}} for i in range(rows)]
        return RowsetPage(ROWS, items, first + rows < ROWS, SERVER_NOW)


def reader(budget, fetcher=None):
    return PageReader(fetcher or Pages(), budget, None, LOG)


def test_pages_are_started_ahead_in_order_and_never_past_the_last_page():
    pages = reader(50)
    prefetch = Prefetcher(pages, 4)
    try:
        seen = []
        for page in range(1, LAST + 1):
            result, early = prefetch.read(PageRequest(page, SIZE, "f"), LAST)
            seen.append(result.items[0]["keys"]["id"])
            assert early == (page > 1)
            # page_concurrency pages ahead: the page taken has usually arrived already.
            assert prefetch.started == list(range(page + 1, min(page + 4, LAST) + 1))
    finally:
        prefetch.close()
    assert seen == [f"f:{page}:0" for page in range(1, LAST + 1)]
    assert sorted(pages.rowset.sent) == [(page, "f") for page in range(1, LAST + 1)]
    assert pages.total == LAST


def test_another_request_drops_what_was_started_ahead():
    pages = reader(50)
    prefetch = Prefetcher(pages, 4)
    try:
        prefetch.read(PageRequest(3, SIZE, "f"), LAST)
        assert prefetch.started == [4, 5, 6, 7]
        result, early = prefetch.read(PageRequest(2, SIZE, "f"), LAST)  # a step-back
        assert (result.items[0]["keys"]["id"], early) == ("f:2:0", False)
        assert prefetch.started == [3, 4, 5, 6]
        result, early = prefetch.read(PageRequest(3, SIZE, "g"), LAST)  # another window
        assert (result.items[0]["keys"]["id"], early) == ("g:3:0", False)
    finally:
        prefetch.close()
    # Dropped pages in flight were sent and counted; none was read twice from the queue.
    assert pages.total == len(pages.rowset.sent)


def test_pages_ahead_leave_the_reserve_and_the_page_itself_may_take_the_last_request():
    pages = reader(4)
    prefetch = Prefetcher(pages, 8)
    try:
        prefetch.read(PageRequest(1, SIZE, "f"), LAST)
        assert prefetch.started == [2, 3]
        assert pages.remaining == RESERVE
        for page in (2, 3, 4):
            prefetch.read(PageRequest(page, SIZE, "f"), LAST)
        assert pages.remaining == 0
        with pytest.raises(BudgetSpentError):
            prefetch.read(PageRequest(5, SIZE, "f"), LAST)
    finally:
        prefetch.close()
    assert len(pages.rowset.sent) == 4


ACTIONS = st.one_of(st.just("next"), st.integers(min_value=1, max_value=3), st.just("other window"))


@settings(max_examples=60)
@given(
    budget=st.integers(min_value=1, max_value=25),
    concurrency=st.integers(min_value=2, max_value=8),
    actions=st.lists(ACTIONS, max_size=30),
)
def test_random_guard_actions_never_exceed_the_budget_and_pages_come_in_order(
    budget, concurrency, actions
):
    pages = reader(budget)
    prefetch = Prefetcher(pages, concurrency)
    page, window = 1, 0
    try:
        for action in actions:
            try:
                result, _ = prefetch.read(PageRequest(page, SIZE, f"w{window}"), LAST)
            except BudgetSpentError:
                break
            assert result.items[0]["keys"]["id"] == f"w{window}:{page}:0"  # the page asked for
            assert pages.total <= budget
            ahead = prefetch.started
            assert ahead == list(range(page + 1, page + 1 + len(ahead)))
            assert len(ahead) <= concurrency
            assert not ahead or ahead[-1] <= LAST
            if action == "next":
                page = page + 1 if page < LAST else 1
            elif action == "other window":
                page, window = 1, window + 1
            else:  # a step-back of that many pages
                page = max(1, page - action)
    finally:
        prefetch.close()
    # Every request counted was sent (cancelled ones were given back), within the budget.
    assert len(pages.rowset.sent) == pages.total <= budget


@pytest.mark.parametrize("n", [1, 37, 95, 240])
def test_the_engine_emits_the_same_rows_and_state_as_a_sequential_run(n):
    sequential = run(make_de(n), {}, max_pages=60)
    concurrent = run(make_de(n), {}, max_pages=60, page_concurrency=4)
    assert concurrent[0] == sequential[0]  # the same rows, in the same order
    # The same state but for the follow-up window's upper (the bookmark then): a server
    # time read earlier, when its page 1 was sent while this window's last pages were out.
    without_clock = [
        {k: v for k, v in state.items() if k != "replication_key_value"}
        for state in (concurrent[1], sequential[1])
    ]
    assert without_clock[0] == without_clock[1]
    assert concurrent[1]["replication_key_value"] <= sequential[1]["replication_key_value"]
    assert concurrent[2].data_pages == sequential[2].data_pages


class ServedOutOfOrder:
    """A DE whose page 2 is served first; 3 rows of page 1 are deleted right after it."""

    def __init__(self, de):
        self.de = de
        self.lock = threading.Lock()
        self.deleted = threading.Event()
        self.data_pages = []

    def fetch(self, *, page, page_size, **kwargs):
        if page_size > 1 and page != 2 and not self.deleted.wait(10):
            raise AssertionError("page 2 was not requested")
        with self.lock:
            result = self.de.fetch(page=page, page_size=page_size, **kwargs)
            if page_size > 1:
                self.data_pages.append(page)
            if page == 2 and not self.deleted.is_set():
                for pk in sorted(self.de.rows)[:3]:
                    self.de.delete(pk)
                self.deleted.set()
        return result


def test_a_page_served_before_the_page_before_it_is_read_again(caplog):
    de = make_de(50)
    _, state, _ = run(de, {}, max_pages=5, page_concurrency=1)  # the verdict (order judged)
    state["window"] = {**state["window"], "next_page": 1, "count_seen": 50, "boundary": None}
    served = ServedOutOfOrder(de)
    with caplog.at_level(logging.INFO):
        emitted, _, _ = run(served, state, max_pages=20, page_concurrency=4)
    # Page 2 came back with the count from before the delete (50 > 47): read again, not
    # mistaken for rows entering the window.
    assert served.data_pages.count(2) == 2
    assert "entered a window" not in caplog.text
    assert set(emitted) == set(de.rows)


def test_a_burst_of_50200s_halves_the_limit_once_and_warns_once(caplog):
    gate = ConcurrencyGate(LOG)
    gate.cap(4)
    with caplog.at_level(logging.INFO):
        gate.blocked(4)
        gate.blocked(4)  # the same burst: sent before the limit was lowered
        assert gate.limit == 2
        gate.blocked(2)
        gate.blocked(1)
    assert gate.limit == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "set page_concurrency to 2 or lower" in warnings[0].getMessage()
    gate.cap(8)  # another stream of the run keeps the lowered limit
    assert gate.limit == 1


def test_an_attempt_waits_for_a_free_slot():
    gate = ConcurrencyGate(LOG)
    gate.cap(1)
    entered = threading.Event()
    with gate.slot() as admitted_under:
        assert admitted_under == 1
        waiting = threading.Thread(target=lambda: _hold(gate, entered))
        waiting.start()
        assert not entered.wait(0.2)  # held back while the only slot is taken
        assert gate.in_flight == 1
    waiting.join(10)
    assert entered.is_set()


def _hold(gate, entered):
    with gate.slot():
        entered.set()


def test_two_threads_with_a_rejected_token_mint_one_new_token(requests_mock, config):
    second_mint = threading.Event()
    mints = []

    def token(request, context):
        mints.append(1)
        if len(mints) == 2:
            # Stay in the mint until a concurrent duplicate arrives (or 0.5 s pass).
            second_mint.wait(0.5)
        if len(mints) == 3:
            second_mint.set()
        return token_json()

    requests_mock.post(f"{AUTH}v2/token", json=token)
    settings_ = Settings.from_config(config)
    tokens = TokenManager(settings_, HttpClient(settings_.retry, sleep=lambda _: None))
    rejected = tokens.get()
    start = threading.Barrier(2)
    got = []

    def on_401():
        start.wait()
        tokens.invalidate(rejected)
        got.append(tokens.get())

    threads = [threading.Thread(target=on_401) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(mints) == 2
    assert got[0] is got[1] is not rejected


def test_each_thread_sends_through_its_own_session(config):
    http = HttpClient(Settings.from_config(config).retry)
    other = []
    thread = threading.Thread(target=lambda: other.append(http._session()))
    thread.start()
    thread.join(10)
    assert http._session() is http.session
    assert other[0] is not http.session
    assert other[0].headers["User-Agent"] == http.session.headers["User-Agent"]


class HeldPages(Pages):
    """Pages after the first stay in flight until released; counts how many at once."""

    def __init__(self):
        super().__init__()
        self.in_flight = 0
        self.changed = threading.Condition(self.lock)
        self.release = threading.Event()

    def fetch(self, *, page, **kwargs):
        if page > 1:
            with self.changed:
                self.in_flight += 1
                self.changed.notify_all()
            self.release.wait(10)
            with self.changed:
                self.in_flight -= 1
        return super().fetch(page=page, **kwargs)

    def wait_in_flight(self, n, deadline=5.0):
        with self.changed:
            return self.changed.wait_for(lambda: self.in_flight >= n, deadline)


def test_while_the_engine_holds_a_page_page_concurrency_requests_stay_in_flight():
    held = HeldPages()
    pages = reader(50, held)
    prefetch = Prefetcher(pages, 4)
    try:
        prefetch.read(PageRequest(1, SIZE, "f"), LAST)  # arrived: the engine emits it now
        # Not 3 (concurrency - 1 ahead): that left one slot idle while the engine emitted.
        assert held.wait_in_flight(4)
        assert prefetch.started == [2, 3, 4, 5]
    finally:
        held.release.set()
        prefetch.close()
    assert len(held.sent) == pages.total == 5


class ProofWatcher:
    """A DE whose ``$filter`` proof waits (with a deadline) for a data page to be sent."""

    def __init__(self, de):
        self.de = de
        self.data_sent = threading.Event()
        self.overlapped = []  # per proof probe: was a data page already sent?
        self.lock = threading.Lock()

    def fetch(self, *, page, page_size, filter_expr=None, **kwargs):
        if page_size > 1:
            self.data_sent.set()
        elif filter_expr is not None:  # the proof: 1-row pages with a $filter
            self.overlapped.append(self.data_sent.wait(5))
        with self.lock:
            return self.de.fetch(page=page, page_size=page_size, filter_expr=filter_expr, **kwargs)


def test_the_first_pages_are_sent_while_filter_is_being_proved():
    de = make_de(95)
    watched = ProofWatcher(de)
    emitted, _, stats = run(watched, {}, max_pages=60, page_concurrency=4)
    assert watched.overlapped[:1] == [True]
    # The pages started on the guess were the window's: none dropped, none read twice.
    assert set(emitted) == set(de.rows)
    assert stats.data_pages == run(make_de(95), {}, max_pages=60)[2].data_pages


def test_pages_started_on_a_wrong_guess_are_dropped_and_the_budget_holds():
    de = make_de(95, filter_honoured=False)  # the proof finds $filter ignored: client mode
    watched = ProofWatcher(de)
    emitted, _, stats = run(watched, {}, max_pages=60, page_concurrency=4)
    assert watched.overlapped[:1] == [True]
    assert set(emitted) == set(de.rows)
    sequential = run(make_de(95, filter_honoured=False), {}, max_pages=60)[2]
    # At most page_concurrency - 1 requests lost on the guess, all of them counted.
    assert 0 < stats.data_pages - sequential.data_pages <= 3
    assert stats.data_pages + stats.probe_requests <= 60


def test_no_pages_are_guessed_when_the_budget_would_not_leave_the_proof_its_requests():
    de = make_de(95)
    watched = ProofWatcher(de)
    watched.data_sent.set()  # do not wait: nothing is sent before the proof here
    emitted, _, stats = run(watched, {}, max_pages=8, page_concurrency=4)
    assert stats.data_pages + stats.probe_requests <= 8
    assert len(emitted) == 10 * stats.data_pages


class LastPageHeld:
    """A DE whose last page of the first window waits (with a deadline) for another query."""

    def __init__(self, de, last):
        self.de = de
        self.last = last
        self.window_filter = None
        self.other_sent = threading.Event()
        self.overlapped = []  # for the first window's last page: was the next window's sent?
        self.lock = threading.Lock()

    def fetch(self, *, page, page_size, filter_expr=None, **kwargs):
        if page_size > 1:
            with self.lock:
                self.window_filter = self.window_filter or filter_expr
                other = filter_expr != self.window_filter
            if other:
                self.other_sent.set()
            elif page == self.last and not self.overlapped:
                self.overlapped.append(self.other_sent.wait(5))
        with self.lock:
            return self.de.fetch(page=page, page_size=page_size, filter_expr=filter_expr, **kwargs)


def test_the_next_window_is_sent_while_the_last_pages_of_this_one_are_in_flight():
    de = make_de(95)
    held = LastPageHeld(de, LAST)
    emitted, state, stats = run(held, {}, max_pages=60, page_concurrency=4)
    assert held.overlapped == [True]
    assert set(emitted) == set(de.rows)
    assert stats.windows_completed == 2
    # The follow-up window's page 1 was taken, not read again.
    follow_ups = [
        r for r in de.requests if r["page_size"] > 1 and r["filter"] != held.window_filter
    ]
    assert len(follow_ups) == 1
    sequential = run(make_de(95), {}, max_pages=60)[2]
    assert stats.data_pages == sequential.data_pages
    assert "window" not in state


class RetryingAhead(Pages):
    """Pages after the first wait for ``go``, then are retried three times (429 50200)."""

    def __init__(self):
        super().__init__()
        self.go = threading.Event()
        self.started = threading.Semaphore(0)
        self.sent_ahead = 0

    def fetch(self, *, page, before_resend=None, **kwargs):
        if page > 1:
            with self.lock:
                self.sent_ahead += 1
            self.started.release()
            assert self.go.wait(30)
            for _ in range(3):
                before_resend()  # raises once the page was dropped: nothing more is sent
        return super().fetch(page=page, **kwargs)


def test_a_page_dropped_in_flight_sends_and_pays_for_no_retry():
    # Found in review: the retries of pages nobody needed any more were paid from the
    # budget (17 requests instead of 4 here), spending what the engine kept for itself.
    fetcher = RetryingAhead()
    pages = reader(30, fetcher)
    prefetch = Prefetcher(pages, 4)
    prefetch.read(PageRequest(1, SIZE, "f"), LAST)  # pages 2..5 started ahead
    for _ in range(3):  # at least three of them in flight (4 threads)
        assert fetcher.started.acquire(timeout=30)
    prefetch.drop()  # a step-back: the engine needs none of them now
    fetcher.go.set()
    prefetch.close()
    # Page 1 and each page sent ahead once (one not sent yet was refunded); no retry paid.
    assert fetcher.sent_ahead in {3, 4}
    assert pages.total == 1 + fetcher.sent_ahead, pages.total
