"""The sink end to end in-process, with Insider mocked by requests-mock."""

import faulthandler
import json
import logging
import threading
import time

import pytest
from target_insider_one.client import InsiderRequestFailedError
from target_insider_one.runtime import InsiderFatalError
from target_insider_one.settlement import ExitCode, Undelivered

from .conftest import (
    UPSERT_URL,
    customer,
    ok_callback,
    record_msg,
    run_target,
    schema_msg,
    sent_bodies,
    state_msg,
    upsert_calls,
)


def messages(n: int, start: int = 0, **overrides) -> list[dict]:
    return [record_msg(customer(i, **overrides)) for i in range(start, start + n)]


def test_happy_path_payload_and_state(requests_mock, make_config):
    requests_mock.post(UPSERT_URL, json=ok_callback)
    result = run_target(make_config(skip_hook=True), [schema_msg(), *messages(3), state_msg(3)])
    bodies = sent_bodies(requests_mock)
    assert len(bodies) == 1
    assert bodies[0]["skip_hook"] is True
    user = bodies[0]["users"][0]
    assert user["identifiers"] == {
        "uuid": "CUST-000000",
        "email": "user0@example.com",
        "phone_number": "+447911100000",
    }
    assert user["not_append"] is True
    assert user["attributes"]["custom"] == {
        "data_source": "sfmc",
        "loyalty_points": 0,
        "lifetime_value": 10.5,
    }
    assert result.states == [{"bookmarks": {"Customers": {"v": 3}}}]
    assert result.stats["users_upserted"] == 3
    assert result.stats["records_received"] == 3
    assert result.dead_letters() == []
    assert not result.target.runtime.settings.dead_letter_path.exists()


def test_partial_failure_maps_error_keys_to_records(requests_mock, make_config):
    def partial(request, context):
        users = json.loads(request.body)["users"]
        context.status_code = 200
        return {
            "data": {
                "successful": {"count": len(users) - 2},
                "fail": {
                    "count": 2,
                    "errors": {
                        "users.1.identifiers.*.regexp(^.+@.+\\..+$)": [
                            "not a valid email address: x"
                        ],
                        "users.3.identifiers.*.type(string)": ["uuid must be string: 12345"],
                        "users.3.attributes.custom.*.type": ["second problem"],
                    },
                },
            }
        }

    requests_mock.post(UPSERT_URL, json=partial)
    result = run_target(make_config(), [schema_msg(), *messages(5), state_msg(1)])
    letters = result.dead_letters()
    assert [d["record"]["SubscriberKey"] for d in letters] == ["CUST-000001", "CUST-000003"]
    assert all(d["reason"] == "rejected_by_insider" for d in letters)
    assert letters[0]["message"] == "not a valid email address: x"
    assert letters[1]["details"]["user_index"] == 3
    assert set(letters[1]["details"]["errors"]) == {
        "users.3.identifiers.*.type(string)",
        "users.3.attributes.custom.*.type",
    }
    assert result.stats["users_upserted"] == 3
    assert result.stats["users_rejected_by_insider"] == 2
    assert result.states  # rejected records are settled (dead-lettered)


def test_partial_failure_indexes_are_per_request(requests_mock, make_config):
    def fail_first(request, context):
        users = json.loads(request.body)["users"]
        context.status_code = 200
        return {
            "data": {
                "successful": {"count": len(users) - 1},
                "fail": {"count": 1, "errors": {"users.0.identifiers.required": ["nope"]}},
            }
        }

    requests_mock.post(UPSERT_URL, json=fail_first)
    result = run_target(
        make_config(batch_size_rows=2, max_concurrent_requests=1),
        [schema_msg(), *messages(5)],
    )
    keys = sorted(d["record"]["SubscriberKey"] for d in result.dead_letters())
    assert keys == ["CUST-000000", "CUST-000002", "CUST-000004"]


def test_failures_insider_does_not_name_are_undelivered_not_counted_upserted(
    requests_mock, make_config
):
    # fail.count says 2 but only one key names a user (the other has no index, and a bare
    # "users.<i>" key must still count): nobody knows which of the rest failed.
    def vague(request, context):
        context.status_code = 200
        return {
            "data": {
                "successful": {"count": 2},
                "fail": {"count": 3, "errors": {"users.1": ["bad"], "users.*.x": ["what"]}},
            }
        }

    requests_mock.post(UPSERT_URL, json=vague)
    result = run_target(
        make_config(), [schema_msg(), *messages(4), state_msg(1)], expect_error=True
    )
    # The named user is rejected for its own reason; the others are not delivered: not
    # dead-lettered, no STATE past them, exit 3 so the next run re-sends them.
    letters = result.dead_letters()
    assert [(d["record"]["SubscriberKey"], d["reason"]) for d in letters] == [
        ("CUST-000001", "rejected_by_insider")
    ]
    assert result.stats["users_upserted"] == 0
    assert result.stats["users_rejected_by_insider"] == 1
    assert result.stats["undelivered_by_reason"] == {"unconfirmed": 3}
    assert result.states == []
    assert result.error.exit_code == ExitCode.UNDELIVERED


def test_successful_count_short_of_the_request_is_not_counted_upserted(requests_mock, make_config):
    requests_mock.post(UPSERT_URL, json={"data": {"successful": {"count": 2}, "fail": {}}})
    result = run_target(make_config(), [schema_msg(), *messages(3)], expect_error=True)
    assert result.dead_letters() == []
    assert result.stats["undelivered_by_reason"] == {"unconfirmed": 3}
    assert result.stats["users_upserted"] == 0


@pytest.mark.parametrize("body", [{"data": {}}, {"data": {"successful": {}, "fail": {}}}, ""])
def test_2xx_without_insiders_counts_is_not_delivered(requests_mock, make_config, body):
    # {"data": {}} used to count as every user upserted.
    requests_mock.post(UPSERT_URL, status_code=200, **({"json": body} if body else {"text": ""}))
    result = run_target(
        make_config(), [schema_msg(), *messages(3), state_msg(1)], expect_error=True
    )
    assert result.stats["users_upserted"] == 0
    assert result.stats["undelivered_by_reason"] == {"unconfirmed": 3}
    assert result.dead_letters() == []
    assert result.states == []
    assert result.error.exit_code == ExitCode.UNDELIVERED


def test_invalid_identifiers_are_dead_lettered_by_reason(requests_mock, make_config):
    requests_mock.post(UPSERT_URL, json=ok_callback)
    records = [
        record_msg({"SubscriberKey": "A", "EmailAddress": "bad", "Phone": None, "FirstName": "A"}),
        record_msg({"SubscriberKey": "", "EmailAddress": "bad", "Phone": "12", "FirstName": "B"}),
        record_msg({"SubscriberKey": "", "EmailAddress": None, "FirstName": "C"}),
    ]
    result = run_target(make_config(), [schema_msg(), *records])
    assert result.stats["skipped_by_reason"] == {"no_valid_identifier": 1, "no_identifier": 1}
    assert result.stats["identifiers_dropped"] == 1
    assert [u["identifiers"] for u in sent_bodies(requests_mock)[0]["users"]] == [{"uuid": "A"}]

    requests_mock.reset_mock()
    strict = run_target(
        make_config(invalid_identifier_policy="skip_record"), [schema_msg(), records[0]]
    )
    assert strict.stats["skipped_by_reason"] == {"invalid_identifier": 1}
    assert upsert_calls(requests_mock) == 0


def test_dead_letters_have_reason_stream_record_and_no_secrets(requests_mock, make_config, caplog):
    requests_mock.post(UPSERT_URL, status_code=400, json={"error": "something is wrong"})
    caplog.set_level(logging.DEBUG)
    result = run_target(make_config(), [schema_msg(), *messages(2), state_msg(1)])
    letters = result.dead_letters()
    assert len(letters) == 2
    first = letters[0]
    assert set(first) >= {"reason", "message", "stream", "record", "at", "details", "run_id"}
    assert first["reason"] == "bad_request"
    assert first["message"] == "something is wrong"
    assert first["stream"] == "Customers"
    assert first["record"] == customer(0)
    assert first["at"].endswith("Z")
    raw = result.target.runtime.settings.dead_letter_path.read_text()
    assert "super-secret-key-123" not in raw
    assert "super-secret-key-123" not in caplog.text
    assert upsert_calls(requests_mock) == 1  # 400 is not retried


def test_no_pii_in_info_logs(requests_mock, make_config, caplog):
    requests_mock.post(UPSERT_URL, json=ok_callback)
    caplog.set_level(logging.INFO)
    bad = record_msg(customer(9, EmailAddress="leaky@example.com", Phone="+44 abc"))
    run_target(make_config(), [schema_msg(), *messages(2), bad])
    info = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "@example.com" not in info
    assert "+4479111" not in info
    assert "super-secret" not in info


def test_retries_then_success(requests_mock, make_config):
    requests_mock.post(
        UPSERT_URL,
        [
            {
                "status_code": 429,
                "json": {"error": "rejected: too many requests"},
                "headers": {"Retry-After": "0"},
            },
            {"status_code": 503, "text": ""},
            {"status_code": 403, "json": {"message": "Request Limit Exceeded"}},
            {"json": {"data": {"successful": {"count": 2}, "fail": {}}}},
        ],
    )
    result = run_target(make_config(), [schema_msg(), *messages(2), state_msg(1)])
    assert result.stats["retries"] == 3
    assert result.stats["requests_sent"] == 4
    assert result.stats["users_upserted"] == 2
    assert result.states


def test_fast_fail_off_delivers_the_rest_then_exits_3_without_state(requests_mock, make_config):
    calls = {"n": 0}

    def first_fails(request, context):
        calls["n"] += 1
        if calls["n"] == 1:
            context.status_code = 500
            return {"success": False, "message": "unknown error"}
        return ok_callback(request, context)

    requests_mock.post(UPSERT_URL, json=first_fails)
    result = run_target(
        make_config(max_retries=0, batch_size_rows=2, max_concurrent_requests=1),
        [schema_msg(), *messages(4), state_msg(4)],
        expect_error=True,
    )
    assert result.error.exit_code == ExitCode.UNDELIVERED
    assert result.dead_letters() == []  # undelivered is never a dead letter
    assert result.stats["failed_requests"] == 1
    assert result.stats["undelivered_by_reason"] == {"server_error": 2}
    assert result.stats["users_upserted"] == 2  # the other batch was still delivered
    assert result.states == []  # the STATE came after the undelivered records


def test_state_before_undelivered_records_is_emitted_and_none_after(requests_mock, make_config):
    calls = {"n": 0}

    def second_fails(request, context):
        calls["n"] += 1
        if calls["n"] == 2:
            context.status_code = 503
            return {"message": "down"}
        return ok_callback(request, context)

    requests_mock.post(UPSERT_URL, json=second_fails)
    result = run_target(
        make_config(max_retries=0, batch_size_rows=2, max_concurrent_requests=1),
        [
            schema_msg(),
            *messages(2),
            state_msg(1),
            *messages(2, start=2),
            state_msg(2),
            *messages(2, start=4),
            state_msg(3),
        ],
        expect_error=True,
    )
    assert result.states == [{"bookmarks": {"Customers": {"v": 1}}}]
    assert result.stats["users_upserted"] == 4
    assert result.stats["records_undelivered"] == 2


def test_fast_fail_on_stops_without_state(requests_mock, make_config):
    requests_mock.post(UPSERT_URL, status_code=503, text="")
    result = run_target(
        make_config(fast_fail=True, max_retries=1),
        [schema_msg(), *messages(3), state_msg(1), *messages(2, start=3), state_msg(2)],
        expect_error=True,
    )
    assert isinstance(result.error, InsiderFatalError)
    assert "fast_fail" in str(result.error)
    assert result.states == []
    assert upsert_calls(requests_mock) == 2  # one request, one retry
    assert result.target.runtime.finished


def test_fast_fail_after_an_earlier_state_emits_nothing_more(requests_mock, make_config):
    # A first run drains at the state (end of input) ... the second run fails fast.
    requests_mock.post(UPSERT_URL, json=ok_callback)
    ok = run_target(make_config(fast_fail=True), [schema_msg(), *messages(2), state_msg(1)])
    assert ok.states == [{"bookmarks": {"Customers": {"v": 1}}}]
    requests_mock.post(UPSERT_URL, status_code=400, json={"error": "bad"})
    failed = run_target(
        make_config(fast_fail=True), [schema_msg(), *messages(2), state_msg(2)], expect_error=True
    )
    assert failed.states == []
    assert isinstance(failed.error, InsiderFatalError)


def test_access_denied_stops_run_regardless_of_fast_fail(requests_mock, make_config):
    requests_mock.post(UPSERT_URL, status_code=403, json={"message": "Access Denied."})
    result = run_target(
        make_config(), [schema_msg(), *messages(2), state_msg(1)], expect_error=True
    )
    assert isinstance(result.error, InsiderFatalError)
    assert "UCD" in str(result.error)
    assert result.states == []
    assert upsert_calls(requests_mock) == 1
    # The summary says what was not delivered, and why.
    assert result.stats["undelivered_by_reason"] == {"run_stopped": 2}
    assert result.dead_letters() == []


def test_dry_run_writes_bodies_and_sends_nothing(requests_mock, make_config):
    result = run_target(
        make_config(dry_run=True, batch_size_rows=2, max_concurrent_requests=2),
        [schema_msg(), *messages(5), state_msg(1)],
    )
    assert upsert_calls(requests_mock) == 0
    path = result.target.runtime.settings.dry_run_path
    bodies = [json.loads(line) for line in path.read_text().splitlines()]
    assert [len(b["users"]) for b in bodies] == [2, 2, 1]
    assert bodies[0]["users"][0]["identifiers"]["uuid"] == "CUST-000000"
    assert result.stats["dry_run_users"] == 5
    assert result.stats["users_upserted"] == 0
    assert result.states == []  # nothing was delivered: no bookmark may move


def test_1000_user_limit(requests_mock, make_config):
    requests_mock.post(UPSERT_URL, json=ok_callback)
    result = run_target(make_config(), [schema_msg(), *messages(2500)])
    sizes = sorted(len(b["users"]) for b in sent_bodies(requests_mock))
    assert sizes == [500, 1000, 1000]
    assert result.stats["users_upserted"] == 2500


def test_byte_limit_split(requests_mock, make_config):
    requests_mock.post(UPSERT_URL, json=ok_callback)
    run_target(
        make_config(max_request_bytes=5_000),
        [schema_msg(), *messages(40, FirstName="x" * 300)],
    )
    for request in requests_mock.request_history:
        assert len(request.body) <= 5_000
    assert sum(len(b["users"]) for b in sent_bodies(requests_mock)) == 40


def test_oversize_user_is_dead_lettered(requests_mock, make_config):
    requests_mock.post(UPSERT_URL, json=ok_callback)
    result = run_target(
        make_config(max_request_bytes=2_000),
        [schema_msg(), *messages(1, FirstName="x" * 3_000), *messages(1, start=1)],
    )
    assert [d["reason"] for d in result.dead_letters()] == ["user_too_large"]
    assert result.stats["users_upserted"] == 1


def test_server_says_too_large_then_halves_are_sent(requests_mock, make_config):
    def limit_3(request, context):
        users = json.loads(request.body)["users"]
        if len(users) > 3:
            context.status_code = 400
            return {"error": "request body is bigger than maximum allowed size 5,000,000 bytes"}
        return ok_callback(request, context)

    requests_mock.post(UPSERT_URL, json=limit_3)
    result = run_target(make_config(), [schema_msg(), *messages(10), state_msg(1)])
    assert result.stats["users_upserted"] == 10
    assert result.dead_letters() == []
    assert result.states


def test_state_only_after_batch_settled_with_concurrency(make_config, monkeypatch):
    # requests-mock serialises requests, so the client is replaced by a slow fake here.
    from target_insider_one.client import InsiderClient, UpsertResponse
    from target_insider_one.target import TargetInsiderOne

    in_flight = {"now": 0, "max": 0, "done": 0}
    lock = threading.Lock()

    def slow_upsert(self, body):
        with lock:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        time.sleep(0.05)
        users = len(json.loads(body)["users"])
        with lock:
            in_flight["now"] -= 1
            in_flight["done"] += 1
        return UpsertResponse(200, successful=users)

    monkeypatch.setattr(InsiderClient, "upsert", slow_upsert)
    snapshots = []
    original = TargetInsiderOne._write_state_message

    def spy(self, state):
        snapshots.append((in_flight["now"], in_flight["done"], self.runtime.stats.as_dict()))
        original(self, state)

    monkeypatch.setattr(TargetInsiderOne, "_write_state_message", spy)
    bad = record_msg({"SubscriberKey": "", "EmailAddress": "bad", "FirstName": "x"})
    result = run_target(
        make_config(batch_size_rows=10, max_concurrent_requests=4),
        [schema_msg(), *messages(95), bad, state_msg(1)],
    )
    assert in_flight["max"] > 1  # requests really ran concurrently
    assert in_flight["max"] <= 4  # and within the bound
    assert len(snapshots) == 1
    pending, done, stats = snapshots[0]
    assert pending == 0
    assert done == 10
    assert stats["users_upserted"] + stats["records_dead_lettered"] == stats["records_received"]
    assert stats["records_received"] == 96
    assert result.states


def test_schema_invalid_record_is_dead_lettered(requests_mock, make_config):
    requests_mock.post(UPSERT_URL, json=ok_callback)
    result = run_target(
        make_config(), [schema_msg(), record_msg(customer(1, LoyaltyPoints="many")), *messages(1)]
    )
    assert [d["reason"] for d in result.dead_letters()] == ["schema_validation_failed"]
    assert result.stats["users_upserted"] == 1


def test_validate_records_off_still_converts(requests_mock, make_config):
    requests_mock.post(UPSERT_URL, json=ok_callback)
    run_target(
        make_config(validate_records=False),
        [schema_msg(), record_msg(customer(1, LoyaltyPoints="7", EmailOptIn="yes"))],
    )
    attrs = sent_bodies(requests_mock)[0]["users"][0]["attributes"]
    assert attrs["email_optin"] is True
    assert attrs["custom"]["loyalty_points"] == 7


@pytest.mark.parametrize("stream_maps", [{"Customers": {"FirstName": "LastName"}}])
def test_stream_maps_apply_before_mapping(requests_mock, make_config, stream_maps):
    requests_mock.post(UPSERT_URL, json=ok_callback)
    run_target(make_config(stream_maps=stream_maps), [schema_msg(), *messages(1)])
    assert sent_bodies(requests_mock)[0]["users"][0]["attributes"]["name"] == "Last"


def test_request_dependencies_follow_shared_identifiers():
    from target_insider_one.payload import RequestPlan
    from target_insider_one.sinks import Item, identifier_keys, request_dependencies

    items = [
        Item({}, b"", identifier_keys({"uuid": "A"}), 0),
        Item({}, b"", identifier_keys({"uuid": "B", "email": "b@x.io"}), 1),
        Item({}, b"", identifier_keys({"email": "b@x.io"}), 2),
        Item({}, b"", identifier_keys({"custom": {"loyalty": "1"}, "uuid": "A"}), 3),
        Item({}, b"", identifier_keys({"uuid": "C"}), 4),
    ]
    plans = [
        RequestPlan([0], b""),
        RequestPlan([1], b""),
        RequestPlan([2, 3], b""),
        RequestPlan([4], b""),
    ]
    assert request_dependencies(plans, items) == [set(), set(), {0, 1}, set()]


def test_same_profile_in_two_requests_is_sent_in_order(make_config, monkeypatch):
    from target_insider_one.client import InsiderClient, UpsertResponse

    timeline = []
    lock = threading.Lock()

    def slow_upsert(self, body):
        users = json.loads(body)["users"]
        uuid = users[0]["identifiers"]["uuid"]
        with lock:
            timeline.append(("start", uuid, users[0]["attributes"]["name"]))
        time.sleep(0.05 if users[0]["attributes"]["name"] == "old" else 0.0)
        with lock:
            timeline.append(("end", uuid, users[0]["attributes"]["name"]))
        return UpsertResponse(200, successful=len(users))

    monkeypatch.setattr(InsiderClient, "upsert", slow_upsert)
    records = [
        record_msg(customer(1, FirstName="old")),
        record_msg(customer(2, FirstName="other")),
        record_msg(customer(1, FirstName="new")),
    ]
    run_target(make_config(batch_size_rows=1, max_concurrent_requests=4), [schema_msg(), *records])
    end_old = timeline.index(("end", "CUST-000001", "old"))
    start_new = timeline.index(("start", "CUST-000001", "new"))
    assert start_new > end_old
    # The unrelated request did not wait.
    assert timeline.index(("start", "CUST-000002", "other")) < end_old


@pytest.fixture
def fake_exit(monkeypatch):
    import os

    def exit_now(code):
        raise SystemExit(code)

    monkeypatch.setattr(os, "_exit", exit_now)


def test_termination_exits_143_at_once_without_draining(
    requests_mock, make_config, capsys, fake_exit
):
    from target_insider_one.target import TargetInsiderOne

    requests_mock.post(UPSERT_URL, json=ok_callback)
    target = TargetInsiderOne(config=make_config())
    target._process_schema_message(schema_msg())
    target._process_record_message(record_msg(customer(1)))
    target._process_state_message(state_msg(1))
    with pytest.raises(SystemExit) as info:
        target._handle_termination(15, None)
    assert info.value.code == 143
    assert requests_mock.call_count == 0  # the buffered record was not drained
    assert capsys.readouterr().out == ""  # and no STATE passes it


def test_termination_never_waits_for_a_lock_the_interrupted_thread_holds(make_config, fake_exit):
    # The handler runs in the main thread wherever it was interrupted, e.g. inside a
    # `with lock:`. These locks are not reentrant: holding them here is the same as the
    # interrupted code holding them. The old handler drained and summarised: it hung.
    from target_insider_one.target import TargetInsiderOne

    target = TargetInsiderOne(config=make_config())
    runtime = target.runtime
    runtime.dead_letters.write(reason="x", message="m", stream="s", record={})
    held, release = threading.Event(), threading.Event()

    def hold_locks():
        with runtime._lock, runtime.stats._lock, runtime.dead_letters._lock:
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold_locks, daemon=True)
    holder.start()
    assert held.wait(10)
    faulthandler.dump_traceback_later(60, exit=True)  # a deadlock fails the run, not hangs it
    try:
        with pytest.raises(SystemExit) as info:
            target._handle_termination(15, None)
    finally:
        faulthandler.cancel_dump_traceback_later()
        release.set()
    assert info.value.code == 143


def test_signal_while_a_state_line_is_written_exits_after_the_line(
    requests_mock, make_config, capsys, fake_exit, monkeypatch
):
    from target_insider_one.target import TargetInsiderOne

    requests_mock.post(UPSERT_URL, json=ok_callback)
    original = TargetInsiderOne._write_state_message

    def interrupted(self, state):
        self._handle_termination(15, None)  # arrives mid-line: must wait for the line
        original(self, state)

    monkeypatch.setattr(TargetInsiderOne, "_write_state_message", interrupted)
    target = TargetInsiderOne(config=make_config())
    with pytest.raises(SystemExit) as info:
        target._process_state_message(state_msg(1))  # nothing open: safe at once
    assert info.value.code == 143
    assert capsys.readouterr().out == json.dumps(state_msg(1)["value"]) + "\n"


def test_fatal_in_one_stream_stops_the_others_cleanly(make_config, monkeypatch):
    # Streams drain in parallel and share the request pool. Stream B fails fast while
    # stream A's request is in flight and then has to be split: A must stop too (no new
    # requests, no "cannot schedule new futures" crash), and the run ends with B's error.
    from target_insider_one.client import InsiderBadRequestError, InsiderClient
    from target_insider_one.sinks import InsiderUpsertSink

    b_failed = threading.Event()

    def upsert(self, body):
        users = json.loads(body)["users"]
        if users[0]["identifiers"]["uuid"].startswith("B"):
            b_failed.set()
            raise InsiderRequestFailedError("HTTP 503: down", 503, 1, Undelivered.SERVER_ERROR)
        assert b_failed.wait(5)
        time.sleep(0.2)  # B's sink is stopping meanwhile
        raise InsiderBadRequestError("request body is bigger than maximum allowed size", 400, True)

    raised = []
    original = InsiderUpsertSink.process_batch

    def spy(self, context):
        try:
            original(self, context)
        except Exception as exc:
            raised.append((self.stream_name, type(exc).__name__))
            raise

    monkeypatch.setattr(InsiderClient, "upsert", upsert)
    monkeypatch.setattr(InsiderUpsertSink, "process_batch", spy)
    msgs = [
        schema_msg("A"),
        schema_msg("B"),
        record_msg(customer(1, SubscriberKey="A1"), "A"),
        record_msg(customer(2, SubscriberKey="A2"), "A"),
        record_msg(customer(3, SubscriberKey="B3"), "B"),
        state_msg(1),
    ]
    result = run_target(
        make_config(fast_fail=True, batch_size_rows=2, max_concurrent_requests=2),
        msgs,
        expect_error=True,
    )
    assert isinstance(result.error, InsiderFatalError)
    deadline = time.monotonic() + 5  # the SDK re-raises B's error without waiting for A
    while len(raised) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(raised) == [("A", "InsiderFatalError"), ("B", "InsiderFatalError")]
    assert result.states == []
    assert result.target.runtime.finished


def test_state_waits_for_records_still_buffered_in_another_stream(
    requests_mock, make_config, monkeypatch
):
    # Stream A drains (full) while stream B still buffers a record received before the
    # STATE: that STATE must wait for B's drain. What Singer needs, and what is pinned:
    # no STATE before every record before it is settled, STATE flows mid-run (not only at
    # the end of input), values only move forward, and the latest STATE goes out last. Not
    # every STATE received need be emitted: one made safe with a later one is skipped.
    from target_insider_one.target import TargetInsiderOne

    requests_mock.post(UPSERT_URL, json=ok_callback)
    before = {1: {"B1"}, 2: {"B1", "A2", "A3"}, 3: {"B1", "A2", "A3", "B4"}}
    before[4] = before[3] | {"A5", "A6"}
    ended = []
    emitted = []
    original = TargetInsiderOne._write_state_message
    original_end = TargetInsiderOne.process_endofpipe

    def spy(self, state):
        sent = {u["identifiers"]["uuid"] for b in sent_bodies(requests_mock) for u in b["users"]}
        emitted.append((state["bookmarks"]["Customers"]["v"], sent, bool(ended)))
        original(self, state)

    def end(self):
        ended.append(True)
        original_end(self)

    monkeypatch.setattr(TargetInsiderOne, "_write_state_message", spy)
    monkeypatch.setattr(TargetInsiderOne, "process_endofpipe", end)
    msgs = [
        schema_msg("A"),
        schema_msg("B"),
        record_msg(customer(1, SubscriberKey="B1"), "B"),
        state_msg(1),
        record_msg(customer(2, SubscriberKey="A2"), "A"),
        record_msg(customer(3, SubscriberKey="A3"), "A"),  # A is full: drained here
        state_msg(2),
        record_msg(customer(4, SubscriberKey="B4"), "B"),  # B is full: drained here
        state_msg(3),
        record_msg(customer(5, SubscriberKey="A5"), "A"),
        record_msg(customer(6, SubscriberKey="A6"), "A"),  # A again: B's batch is settled
        state_msg(4),
    ]
    result = run_target(make_config(batch_size_rows=2, max_concurrent_requests=1), msgs)
    values = [value for value, _, _ in emitted]
    assert all(before[value] <= sent for value, sent, _ in emitted)  # never ahead
    assert values == sorted(set(values))
    assert values[-1] == 4
    assert 3 in values  # safe once B's batch settled: emitted then, before the end
    assert not emitted[values.index(3)][2]
    assert [s["bookmarks"]["Customers"]["v"] for s in result.states] == values


def test_state_does_not_wait_for_the_batch_in_the_background(
    requests_mock, make_config, monkeypatch
):
    # Insider answers the background batch only once the record after the STATE was
    # read: a STATE that waited for that batch would hold it up until the deadline.
    from target_insider_one.sinks import InsiderUpsertSink

    read_on = threading.Event()
    answered_in_time = []

    def slow(request, context):
        answered_in_time.append(read_on.wait(timeout=10))
        return ok_callback(request, context)

    original = InsiderUpsertSink.process_record

    def spy(self, record, context):
        if record["SubscriberKey"] == "CUST-000002":
            read_on.set()
        original(self, record, context)

    requests_mock.post(UPSERT_URL, json=slow)
    monkeypatch.setattr(InsiderUpsertSink, "process_record", spy)
    msgs = [schema_msg(), *messages(2), state_msg(2), *messages(1, start=2), state_msg(3)]
    result = run_target(make_config(batch_size_rows=2, max_concurrent_requests=1), msgs)
    assert answered_in_time == [True, True]
    assert [s["bookmarks"]["Customers"]["v"] for s in result.states][-1] == 3
    assert result.stats["users_upserted"] == 3


def test_fast_fail_stops_requests_that_are_still_retrying(requests_mock, make_config):
    # One request ends undelivered at once; the other is in a 429 storm that its retry
    # budget would ride out for a minute: fast_fail must not wait for it.
    def answer(request, context):
        users = json.loads(request.body)["users"]
        if users[0]["identifiers"]["uuid"] == "CUST-000001":
            context.status_code = 200
            return {"data": {}}  # unconfirmed: not retried
        context.status_code = 429
        return {"error": "rejected: too many requests"}

    requests_mock.post(UPSERT_URL, json=answer)
    config = make_config(
        fast_fail=True,
        batch_size_rows=1,
        max_concurrent_requests=2,
        max_retries=100,
        retry_budget_seconds=60,
        backoff_base_seconds=0.2,
        backoff_max_seconds=0.2,
    )
    result = run_target(config, [schema_msg(), *messages(2), state_msg(1)], expect_error=True)
    assert result.error.exit_code == ExitCode.UNDELIVERED
    assert result.stats["undelivered_by_reason"] == {"unconfirmed": 1, "run_stopped": 1}
    assert result.states == []
    assert result.dead_letters() == []


def test_background_delivery_failure_stops_before_the_next_batch_is_sent(
    requests_mock, make_config
):
    # The first full batch is delivered in the background while later records are mapped;
    # its fast-fail error stops the run before any later batch is sent, and every record
    # mapped meanwhile is counted as not delivered (never lost, never past a STATE).
    requests_mock.post(UPSERT_URL, status_code=503, text="")
    result = run_target(
        make_config(fast_fail=True, max_retries=0, batch_size_rows=2, max_concurrent_requests=1),
        [schema_msg(), *messages(7), state_msg(7)],
        expect_error=True,
    )
    assert isinstance(result.error, InsiderFatalError)
    assert [b["users"][0]["identifiers"]["uuid"] for b in sent_bodies(requests_mock)] == [
        "CUST-000000"
    ]
    assert result.states == []
    stats = result.target.runtime.stats.as_dict()
    assert stats["records_received"] == stats["records_undelivered"] >= 2
    assert stats["users_upserted"] == 0


def test_background_delivery_keeps_state_after_its_records(requests_mock, make_config):
    requests_mock.post(UPSERT_URL, json=ok_callback)
    result = run_target(
        make_config(batch_size_rows=2, max_concurrent_requests=1),
        [schema_msg(), *messages(2), state_msg(1), *messages(3, start=2), state_msg(2)],
    )
    assert [s["bookmarks"]["Customers"]["v"] for s in result.states] == [1, 2]
    bodies = sent_bodies(requests_mock)
    assert [u["identifiers"]["uuid"] for b in bodies for u in b["users"]] == [
        f"CUST-{i:06d}" for i in range(5)
    ]
