"""End to end against the sandbox: what arrives on stdin can never stop a run."""

from __future__ import annotations

import json

import pytest

from .conftest import DEMO_MAPPING, customer, record_msg, schema_msg, state_msg
from .e2e_helpers import run_cli

pytestmark = pytest.mark.e2e


def _line(message: dict) -> bytes:
    return json.dumps(message).encode() + b"\n"


def poison_input() -> bytes:
    """Records with a lone surrogate escape, a raw non-UTF-8 byte and invisible characters."""
    lines = [_line(schema_msg())]
    # A lone surrogate in the only identifier (its JSON escape: valid JSON, not Unicode).
    lines.append(
        _line(record_msg(customer(1, EmailAddress=None, Phone=None, SubscriberKey="K\ud800")))
    )
    # A raw 0xFF byte (not UTF-8) inside the first name: the attribute cannot be sent.
    raw = _line(record_msg(customer(2, FirstName="Ann@@")))
    lines.append(raw.replace(b"Ann@@", b"Ann\xff"))
    # A zero-width space and a BOM in the email, U+2028 in the city.
    lines.append(
        _line(record_msg(customer(3, EmailAddress="\ufeffzoe\u200b@example.com", City="L\u2028A")))
    )
    lines.append(_line(record_msg(customer(4))))
    lines.append(_line(state_msg(4)))
    return b"".join(lines)


def test_poison_records_never_stop_the_run_and_are_not_dead_lettered_twice(sandbox, tmp_path):
    config = sandbox.target_config(**DEMO_MAPPING)
    first = run_cli(config, poison_input(), tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    assert first.states == [{"bookmarks": {"Customers": {"v": 4}}}]

    profiles = {p["identifiers"]["uuid"]: p for p in sandbox.profiles()}
    assert sorted(profiles) == ["CUST-000002", "CUST-000003", "CUST-000004"]
    assert "name" not in profiles["CUST-000002"]["attributes"]  # dropped, the rest sent
    assert profiles["CUST-000003"]["identifiers"]["email"] == "zoe@example.com"
    assert profiles["CUST-000003"]["attributes"]["city"] == "L\u2028A"

    raw = first.dead_letter_path.read_bytes()
    text = raw.decode("utf-8")  # strict: valid UTF-8
    assert text.splitlines() == text.split("\n")[:-1]  # nothing breaks a line reader
    (letter,) = [json.loads(line) for line in text.splitlines()]
    assert letter["reason"] == "no_valid_identifier"
    assert letter["record"]["SubscriberKey"] == "K\ud800"  # replayable exactly
    assert first.dead_letter_path.stat().st_mode & 0o777 == 0o600

    second = run_cli(config, poison_input(), tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.dead_letter_path.read_bytes() == raw  # the same dead letter is not re-added
    assert "dead-lettered:           1" in second.stderr
