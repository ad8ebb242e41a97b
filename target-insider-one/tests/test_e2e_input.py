"""End to end against the sandbox: what arrives on stdin can never stop a run."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from .conftest import DEMO_MAPPING, customer, record_msg, schema_msg, state_msg
from .e2e_helpers import TARGET_CLI, run_cli

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


def _start_without_eof(config: dict, tmp_path) -> subprocess.Popen:
    """The CLI with a stdin that never ends: it can only exit if it does not read first."""
    config_path = tmp_path / "target-config.json"
    config_path.write_text(json.dumps({"dead_letter_path": str(tmp_path / "d.jsonl"), **config}))
    return subprocess.Popen(
        [str(TARGET_CLI), "--config", str(config_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )


def _finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the target waited for input instead of stopping at the start-up check")
    finally:
        if proc.stdin:
            proc.stdin.close()
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def test_wrong_key_stops_before_any_input_is_read(sandbox, tmp_path):
    config = sandbox.target_config(**DEMO_MAPPING, api_key="wrong-key-value")
    proc = _start_without_eof(config, tmp_path)
    proc.stdin.write(_line(schema_msg()))  # a tap has started writing; EOF never comes
    proc.stdin.flush()
    code, out, err = _finish(proc)
    assert code == 1
    assert out == ""  # no STATE
    assert "TARGET_INSIDER_ONE_API_KEY" in err
    assert "Traceback" not in err
    assert "wrong-key-value" not in err
    assert [r["status"] for r in sandbox.requests(endpoint="columns")] == [403]
    assert sandbox.requests() == []  # nothing was sent


def test_unreachable_host_names_api_base_url(tmp_path):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {
        "partner_name": "p",
        "api_key": "k",
        "api_base_url": f"http://127.0.0.1:{port}",
        **DEMO_MAPPING,
    }
    code, out, err = _finish(_start_without_eof(config, tmp_path))
    assert code == 1
    assert out == ""
    assert f"Cannot reach Insider at api_base_url 'http://127.0.0.1:{port}'" in err
    assert "Traceback" not in err


def test_custom_attributes_insider_lacks_are_warned_about(sandbox, tmp_path):
    sandbox.configure(insider_custom_attributes=["data_source"])
    config = sandbox.target_config(**DEMO_MAPPING)
    result = run_cli(config, [schema_msg(), record_msg(customer(1)), state_msg(1)], tmp_path)
    assert result.returncode == 0, result.stderr
    summary = result.stderr[result.stderr.index("Insider run summary") :]
    for name in ("loyalty_points", "lifetime_value"):
        assert f"WARNING: custom attribute {name!r} is not defined in Insider" in summary
    assert "'data_source' is not defined" not in result.stderr
    assert len(sandbox.profiles()) == 1
    assert [r["status"] for r in sandbox.requests(endpoint="columns")] == [200]


def test_stream_without_any_identifier_field_is_a_config_error(sandbox, tmp_path):
    from importlib.resources import files

    from singer_sdk.testing import target_test_streams

    text = (files(target_test_streams) / "schema_no_properties.singer").read_text()
    config = sandbox.target_config(
        identifier_mappings=[{"type": "uuid", "field": "id"}], attribute_mappings={"metric": "m"}
    )
    result = run_cli(config, text, tmp_path)
    assert result.returncode == 1
    assert result.states == []
    assert "Traceback" not in result.stderr
    assert (
        "identifier_mappings[0].field 'id' (uuid) is not a field of stream "
        "'test_object_schema_with_properties'; the stream's fields: object_store"
    ) in result.stderr
    assert sandbox.requests() == []


def test_schema_with_multiple_of_validates_instead_of_crashing(sandbox, tmp_path):
    schema = json.loads(json.dumps(schema_msg()))
    schema["schema"]["properties"]["LifetimeValue"]["multipleOf"] = 0.01
    lines = [json.dumps(schema)]
    lines += [
        json.dumps(record_msg(customer(i))).replace('"LifetimeValue": 10.5', v)
        for i, v in enumerate(['"LifetimeValue": 19.01', '"LifetimeValue": 19.015'])
    ]
    lines.append(json.dumps(state_msg(2)))
    result = run_cli(sandbox.target_config(**DEMO_MAPPING), "\n".join(lines) + "\n", tmp_path)
    assert result.returncode == 0, result.stderr
    assert [p["identifiers"]["uuid"] for p in sandbox.profiles()] == ["CUST-000000"]
    (letter,) = result.dead_letters()
    assert letter["reason"] == "schema_validation_failed"
    assert letter["record"]["SubscriberKey"] == "CUST-000001"


@pytest.mark.parametrize("schema_requires_it", [False, True])
def test_a_record_without_its_key_property_is_dead_lettered_and_the_run_goes_on(
    sandbox, tmp_path, schema_requires_it
):
    schema = json.loads(json.dumps(schema_msg()))
    if schema_requires_it:
        schema["schema"]["required"] = ["SubscriberKey"]
    else:
        schema["schema"].pop("required", None)
    keyless = customer(1)
    del keyless["SubscriberKey"]  # still has an email: mapping alone would send it
    lines = [schema, record_msg(customer(0)), record_msg(keyless), record_msg(customer(2))]
    lines.append(state_msg(3))
    result = run_cli(sandbox.target_config(**DEMO_MAPPING), b"".join(map(_line, lines)), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.states == [{"bookmarks": {"Customers": {"v": 3}}}]
    uuids = sorted(p["identifiers"]["uuid"] for p in sandbox.profiles())
    assert uuids == ["CUST-000000", "CUST-000002"]
    (letter,) = result.dead_letters()
    assert letter["reason"] == "schema_validation_failed"
    assert letter["record"]["EmailAddress"] == keyless["EmailAddress"]
    assert keyless["EmailAddress"] not in result.stderr  # no PII in the log


def test_a_batch_message_stops_the_run_before_the_state_after_it(sandbox, tmp_path):
    # The SDK would hand a BATCH's records to the sink outside the record path: never sent,
    # never counted, and the STATE after them emitted with exit 0.
    batch_file = tmp_path / "batch-1.jsonl"
    batch_file.write_text("".join(json.dumps(customer(i)) + "\n" for i in range(10, 13)))
    batch = {
        "type": "BATCH",
        "stream": "Customers",
        "encoding": {"format": "jsonl", "compression": "none"},
        "manifest": [batch_file.as_uri()],
    }
    messages = [schema_msg(), record_msg(customer(1)), state_msg("before"), batch]
    messages.append(state_msg("after"))
    result = run_cli(sandbox.target_config(**DEMO_MAPPING), messages, tmp_path)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "BATCH" in result.stderr
    assert "batch_config" in result.stderr
    assert "Traceback" not in result.stderr
    assert "after" not in [s["bookmarks"]["Customers"]["v"] for s in result.states]
    stored = {p["identifiers"]["uuid"] for p in sandbox.profiles()}
    assert not stored & {f"CUST-{i:06d}" for i in range(10, 13)}
