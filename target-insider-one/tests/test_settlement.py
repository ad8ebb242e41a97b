from hypothesis import given
from hypothesis import strategies as st
from target_insider_one.settlement import ExitCode, Ledger, run_exit_code


def test_state_waits_for_every_earlier_record():
    ledger = Ledger()
    a, b = ledger.open(), ledger.open()
    ledger.note_state("s1")
    c = ledger.open()
    ledger.note_state("s2")
    assert ledger.take_safe_state() is None
    ledger.settle([b])
    assert ledger.take_safe_state() is None  # a is still open
    ledger.settle([a])
    assert ledger.take_safe_state() == "s1"
    assert ledger.take_safe_state() is None  # taken once
    ledger.settle([c])
    assert ledger.take_safe_state() == "s2"


def test_a_state_with_nothing_open_is_safe_at_once():
    ledger = Ledger()
    ledger.note_state("s1")
    assert ledger.take_safe_state() == "s1"


def test_undelivered_record_blocks_every_later_state():
    ledger = Ledger()
    a = ledger.open()
    ledger.note_state("s1")
    b = ledger.open()
    ledger.note_state("s2")
    c = ledger.open()
    ledger.note_state("s3")
    ledger.undeliver([b])
    ledger.settle([a, c])
    assert ledger.blocked
    assert ledger.take_safe_state() == "s1"
    d = ledger.open()
    ledger.settle([d])
    ledger.note_state("s4")
    assert ledger.take_safe_state() is None


def test_an_equal_state_is_not_emitted_twice():
    ledger = Ledger()
    ledger.note_state({"v": 1})
    assert ledger.take_safe_state() == {"v": 1}
    ledger.note_state({"v": 1})
    assert ledger.take_safe_state() is None


# One step: open a record, note a state, or settle / undeliver an open record.
_STEPS = st.lists(
    st.tuples(st.sampled_from(["open", "state", "settle", "undeliver"]), st.integers(0, 50)),
    max_size=80,
)


@given(_STEPS, st.sampled_from(["new", "same", "equal"]))
def test_taking_a_state_without_the_lock_gives_the_locked_answers(steps, value):
    fast, reference = Ledger(), Ledger()
    open_records: list[int] = []
    for index, (action, pick) in enumerate(steps):
        if action == "open":
            open_records.append(fast.open())
            assert reference.open() == open_records[-1]
        elif action == "state":
            # New values, the very same object again, or equal copies (not emitted twice).
            state = {"new": {"n": index}, "same": _SAME_STATE, "equal": {"n": 0}}[value]
            fast.note_state(state)
            reference.note_state(state)
        elif open_records:
            number = open_records.pop(pick % len(open_records))
            for ledger in (fast, reference):
                (ledger.settle if action == "settle" else ledger.undeliver)([number])
        assert fast.take_safe_state() == reference._take_safe_state_locked()


_SAME_STATE = {"n": 0}


@given(_STEPS)
def test_a_safe_state_never_passes_an_unsettled_record(steps):
    ledger = Ledger()
    open_records: list[int] = []
    unsettled: set[int] = set()  # open or undelivered
    state_horizon: dict[int, int] = {}  # state id -> records opened before it
    opened = 0
    emitted: list[int] = []
    for action, pick in steps:
        if action == "open":
            open_records.append(ledger.open())
            unsettled.add(open_records[-1])
            opened += 1
        elif action == "state":
            state_id = len(state_horizon)
            state_horizon[state_id] = opened
            ledger.note_state(state_id)
        elif open_records:
            number = open_records.pop(pick % len(open_records))
            if action == "settle":
                ledger.settle([number])
                unsettled.discard(number)
            else:
                ledger.undeliver([number])
        state = ledger.take_safe_state()
        if state is not None:
            emitted.append(state)
            assert all(n >= state_horizon[state] for n in unsettled)
    assert emitted == sorted(emitted)
    if not unsettled and state_horizon:
        # Everything settled: the last state is safe (emitted now or before).
        last = ledger.take_safe_state()
        assert (last if last is not None else emitted[-1]) == len(state_horizon) - 1


def test_exit_code():
    def code(**kwargs):
        options = {
            "undelivered": 0,
            "dead_lettered": 0,
            "received": 100,
            "max_dead_letters": None,
            "max_dead_letter_percent": None,
            **kwargs,
        }
        return run_exit_code(**options)

    assert code() is ExitCode.OK
    assert code(dead_lettered=100) is ExitCode.OK  # the alert is off by default
    assert code(undelivered=1, dead_lettered=100, max_dead_letters=0) is ExitCode.UNDELIVERED
    assert code(dead_lettered=5, max_dead_letters=5) is ExitCode.OK
    assert code(dead_lettered=6, max_dead_letters=5) is ExitCode.TOO_MANY_DEAD_LETTERS
    assert code(dead_lettered=10, max_dead_letter_percent=10) is ExitCode.OK
    assert code(dead_lettered=11, max_dead_letter_percent=10) is ExitCode.TOO_MANY_DEAD_LETTERS
    assert code(received=0, max_dead_letter_percent=0) is ExitCode.OK


def test_settle_response_attributes_named_failures_and_upserts_the_rest():
    from target_insider_one.client import UpsertResponse
    from target_insider_one.settlement import settle_response

    response = UpsertResponse(
        200, successful=2, fail_count=1, errors={"users.1.identifiers.email": ["invalid"]}
    )
    outcome = settle_response(response, 3)
    assert outcome.rejected == {1: {"users.1.identifiers.email": ["invalid"]}}
    assert outcome.upserted == [0, 2]
    assert outcome.unconfirmed == []


def test_settle_response_counts_that_do_not_add_up_leave_the_others_unconfirmed():
    from target_insider_one.client import UpsertResponse
    from target_insider_one.settlement import settle_response

    # Two failures counted, one named (and one key naming no user of the request).
    response = UpsertResponse(
        200, successful=1, fail_count=2, errors={"users.0.x": ["bad"], "users.9.x": ["?"]}
    )
    outcome = settle_response(response, 3)
    assert list(outcome.rejected) == [0]
    assert outcome.upserted == []
    assert outcome.unconfirmed == [1, 2]
    assert outcome.unattributed == ["users.9.x"]
