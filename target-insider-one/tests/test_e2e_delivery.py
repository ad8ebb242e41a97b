"""End to end: delivery semantics when Insider is throttling, down or unreachable.

Undelivered records are never dead-lettered, STATE never passes them, the run exits 3 and
a rerun from the last STATE delivers them. Also STATE during a run (a killed run keeps its
progress) and SIGTERM at random moments.
"""

from __future__ import annotations

import random
import signal
import socket

import pytest
from target_insider_one.settlement import ExitCode

from .conftest import DEMO_MAPPING, customer, record_msg, schema_msg, state_msg
from .e2e_helpers import RunningCli, run_cli

pytestmark = pytest.mark.e2e

FAST_RETRIES = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05}


def config_for(sandbox, **overrides):
    return sandbox.target_config(**{**DEMO_MAPPING, **FAST_RETRIES, **overrides})


def batches(count: int, size: int, start: int = 0) -> list[dict]:
    """``count`` batches of ``size`` records, each followed by STATE ``v`` = its end index."""
    msgs = [schema_msg()]
    for first in range(start, start + count * size, size):
        msgs += [record_msg(customer(i)) for i in range(first, first + size)]
        msgs.append(state_msg(first + size))
    return msgs


def stored_keys(sandbox) -> set[str]:
    return {p["identifiers"]["uuid"] for p in sandbox.profiles()}


def keys(indexes) -> set[str]:
    return {customer(i)["SubscriberKey"] for i in indexes}


def test_a_429_storm_longer_than_the_old_retries_is_ridden_out(sandbox, tmp_path):
    # Nine 429s in a row on one request: the old 5 retries dead-lettered it (exit 0).
    sandbox.add_faults({"endpoint": "upsert", "status": 429, "retry_after": 0, "times": 9})
    config = config_for(sandbox, batch_size_rows=2, max_concurrent_requests=1)
    result = run_cli(config, batches(3, 2), tmp_path)
    assert result.returncode == ExitCode.OK, result.stderr
    assert result.dead_letters() == []
    assert stored_keys(sandbox) == keys(range(6))
    assert result.states[-1] == state_msg(6)["value"]


def test_an_outage_the_budget_outlasts_ends_in_a_complete_run(sandbox, tmp_path):
    # Insider answers 503 until the test ends the outage, after more failed attempts than
    # the old max_retries allowed; the retry budget outlasts it.
    sandbox.add_faults({"endpoint": "upsert", "status": 503, "times": None})
    config = config_for(
        sandbox, batch_size_rows=2, max_concurrent_requests=1, retry_budget_seconds=120
    )
    run = RunningCli(config, batches(3, 2), tmp_path)
    run.wait_until(lambda: sandbox.faults()[0]["fired"] >= 8)
    sandbox.clear_faults()
    assert run.finish() == ExitCode.OK, run.stderr
    assert run.dead_letters() == []
    assert stored_keys(sandbox) == keys(range(6))
    assert run.states[-1] == state_msg(6)["value"]


def test_an_outage_longer_than_the_budget_leaves_a_resumable_state(sandbox, tmp_path):
    # The first request lands, then Insider is down for longer than the retry budget.
    sandbox.add_faults({"endpoint": "upsert", "status": 503, "after": 1, "times": None})
    config = config_for(
        sandbox, batch_size_rows=2, max_concurrent_requests=1, retry_budget_seconds=0.3
    )
    result = run_cli(config, batches(3, 2), tmp_path)
    assert result.returncode == ExitCode.UNDELIVERED, result.stderr
    assert result.dead_letters() == []  # not delivered is not rejected
    # STATE stops after the delivered batch, never past the undelivered records.
    assert result.states == [state_msg(2)["value"]]
    assert stored_keys(sandbox) == keys(range(2))
    assert "4 not delivered (server_error=4)" in result.stderr
    # Insider is back; the next run resumes from that STATE (as the tap would) and
    # delivers the rest.
    sandbox.clear_faults()
    rerun = run_cli(config, batches(2, 2, start=2), tmp_path)
    assert rerun.returncode == ExitCode.OK, rerun.stderr
    assert stored_keys(sandbox) == keys(range(6))
    assert rerun.states[-1] == state_msg(6)["value"]


def closed_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("where", ["refused", "unknown_host"])
def test_wrong_api_base_url_exits_nonzero_without_state_or_dead_letters(tmp_path, where):
    # A closed port, or a host that never resolves (.invalid, RFC 2606): DNS fails.
    url = {
        "refused": f"http://127.0.0.1:{closed_loopback_port()}",
        "unknown_host": "https://unification.useinsider.invalid",
    }[where]
    config = {
        "partner_name": "acme",
        "api_key": "some-api-key",
        "api_base_url": url,
        "retry_budget_seconds": 0.3,
        # The start-up check would stop this run before any input (test_e2e_input covers
        # that); here the delivery path must hold on its own, as for a mid-run failure.
        "preflight": False,
        **DEMO_MAPPING,
        **FAST_RETRIES,
    }
    result = run_cli(config, batches(2, 3), tmp_path)
    assert result.returncode == ExitCode.UNDELIVERED
    assert result.states == []
    assert result.dead_letters() == []
    assert "6 not delivered (connection_error=6)" in result.stderr


def test_state_is_emitted_during_the_run_so_a_killed_run_keeps_its_progress(sandbox, tmp_path):
    # The fourth request hangs; the run is killed (no handler runs) while it waits.
    sandbox.add_faults(
        {"endpoint": "upsert", "action": "delay", "delay_seconds": 30, "after": 3, "times": None}
    )
    config = config_for(sandbox, batch_size_rows=2, max_concurrent_requests=1)
    run = RunningCli(config, batches(6, 2), tmp_path)
    run.wait_until(lambda: sandbox.faults()[0]["fired"] >= 1)
    run.wait_until(lambda: len(run.lines) >= 3)
    run.proc.send_signal(signal.SIGKILL)
    run.finish()
    last = run.states[-1]["bookmarks"]["Customers"]["v"]
    assert last == 6
    assert keys(range(last)) <= stored_keys(sandbox)


@pytest.mark.slow
def test_sigterm_at_random_moments_exits_promptly_and_never_passes_unsettled_records(
    sandbox, tmp_path
):
    rng = random.Random(20261201)
    exits = []
    for trial in range(24):
        sandbox.reset()
        delay = rng.choice([0.01, 0.05, 0.2])
        sandbox.add_faults(
            {"endpoint": "upsert", "action": "delay", "delay_seconds": delay, "times": None}
        )
        msgs = [schema_msg()]
        for first in range(0, 12, 3):  # batches of 2 sendable records and 1 dead letter
            msgs += [record_msg(customer(i)) for i in (first, first + 1)]
            msgs.append(record_msg(customer(first + 2, SubscriberKey="", EmailAddress=None,
                                            Phone=None)))  # fmt: skip
            msgs.append(state_msg(first + 3))
        trial_dir = tmp_path / f"trial-{trial}"
        trial_dir.mkdir()
        config = config_for(sandbox, batch_size_rows=2, max_concurrent_requests=1)
        run = RunningCli(config, msgs, trial_dir)
        moment = rng.choice(["start", "request", "state"])
        if moment == "request":
            wanted = rng.randint(1, 4)
            run.wait_until(lambda n=wanted: sandbox.faults()[0]["matched"] >= n)
        elif moment == "state":
            wanted = rng.randint(1, 3)
            run.wait_until(lambda n=wanted, lines=run.lines: len(lines) >= n)
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGTERM)
        code = run.finish(timeout=15)  # raises if the target does not exit promptly
        exits.append(code)
        # 143 from the handler; -15 if the signal came before the SDK installed it.
        assert code in {ExitCode.OK, 128 + signal.SIGTERM, -signal.SIGTERM}, run.stderr
        if not run.states:
            continue
        last = run.states[-1]["bookmarks"]["Customers"]["v"]
        settled = stored_keys(sandbox) | {
            d["record"]["SubscriberKey"] or f"CUST-{d['record']['LoyaltyPoints']:06d}"
            for d in run.dead_letters()
        }
        assert keys(range(last)) <= settled, (trial, moment, last)
    assert 128 + signal.SIGTERM in exits  # the signal really interrupted runs


def test_too_many_dead_letters_exit_4_with_the_counts_on_the_first_summary_line(sandbox, tmp_path):
    msgs = batches(1, 3)
    msgs.insert(1, record_msg(customer(9, SubscriberKey="", EmailAddress=None, Phone=None)))
    config = config_for(sandbox, max_dead_letters=0)
    result = run_cli(config, msgs, tmp_path)
    assert result.returncode == ExitCode.TOO_MANY_DEAD_LETTERS, result.stderr
    assert result.states == [state_msg(3)["value"]]  # delivery and STATE are unchanged
    assert stored_keys(sandbox) == keys(range(3))
    assert (
        "Insider run summary (too_many_dead_letters): 1 dead-lettered (no_identifier=1), "
        "0 not delivered"
    ) in result.stderr
    percent = run_cli(config_for(sandbox, max_dead_letter_percent=30), msgs, tmp_path)
    assert percent.returncode == ExitCode.OK  # 1 of 4 is 25%
    percent = run_cli(config_for(sandbox, max_dead_letter_percent=20), msgs, tmp_path)
    assert percent.returncode == ExitCode.TOO_MANY_DEAD_LETTERS
