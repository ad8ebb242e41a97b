"""Unit tests of the preview's masking, input cut-off and record-to-outcome pairing."""

from __future__ import annotations

import io
import json

from hypothesis import given
from hypothesis import strategies as st
from target_insider_one.preview import MASK, correlate, mask, read_first_records, render

TEXT = st.text(min_size=5, max_size=60).filter(lambda s: MASK[0] not in s)
JSON_LEAF = st.none() | st.booleans() | st.integers() | TEXT


@given(TEXT)
def test_a_masked_string_never_contains_the_original(value):
    assert value not in mask(value)


@given(TEXT, TEXT)
def test_a_masked_email_hides_the_local_part_and_the_domain_name(local, domain):
    masked = mask(f"{local.replace('@', '')}x@{domain}.com")
    assert masked.endswith(f"@{MASK}.com")
    assert local.replace("@", "") + "x" not in masked


@given(st.dictionaries(st.text(max_size=10), st.recursive(JSON_LEAF, st.lists, max_leaves=5)))
def test_masking_keeps_keys_numbers_flags_and_nulls(value):
    masked = mask(value)
    assert list(masked) == list(value)
    for key, item in value.items():
        if item is None or isinstance(item, bool | int):
            assert masked[key] == item
        elif isinstance(item, str):
            assert item not in json.dumps(masked[key])


def _record(stream: str, record: dict) -> str:
    return json.dumps({"type": "RECORD", "stream": stream, "record": record}) + "\n"


def test_input_stops_after_n_records_and_drops_state():
    schema = json.dumps({"type": "SCHEMA", "stream": "s", "schema": {}, "key_properties": []})
    state = json.dumps({"type": "STATE", "value": {"bookmarks": {}}})
    lines = [schema + "\n", *(_record("s", {"id": i}) for i in range(5)), state + "\n"]
    lines.insert(3, state + "\n")
    kept, count = read_first_records(io.StringIO("".join(lines)), 3)
    assert count == 3
    assert [json.loads(line)["type"] for line in kept] == ["SCHEMA", "RECORD", "RECORD", "RECORD"]


def test_records_pair_with_users_in_order_and_dead_letters_by_record():
    records = [{"id": 1}, {"id": 2}, {"id": 2}, {"id": 3}]
    lines = [_record("s", r) for r in records]
    bodies = [
        {"users": [{"identifiers": {"uuid": "1"}}]},
        {"users": [{"identifiers": {"uuid": "3"}}]},
    ]
    dead = [{"stream": "s", "record": {"id": 2}, "reason": "no_identifier", "message": "none"}]
    outcomes = correlate(lines, bodies, dead)
    assert [o.user["identifiers"]["uuid"] if o.user else o.reason for o in outcomes] == [
        "1", "no_identifier", "no_identifier", "3",
    ]  # fmt: skip


def test_render_masks_a_value_quoted_in_a_dead_letter_message():
    lines = [_record("s", {"Email": "someone@example.com"})]
    dead = [{"stream": "s", "record": {"Email": "someone@example.com"}, "reason": "bad",
             "message": "not a valid email address: someone@example.com"}]  # fmt: skip
    text = render(correlate(lines, [], dead), 1, show_pii=False)
    assert "someone" not in text
    assert "0 would be sent, 1 dead-lettered" in text
    shown = render(correlate(lines, [], dead), 1, show_pii=True)
    assert "not a valid email address: someone@example.com" in shown


def test_config_from_the_environment_keeps_numbers_numbers(monkeypatch):
    """Meltano's plugin commands pass settings only as environment variables (--config ENV)."""
    from types import SimpleNamespace

    from target_insider_one.operator_cli import config_from
    from target_insider_one.target import TargetInsiderOne

    monkeypatch.setenv("TARGET_INSIDER_ONE_REQUEST_TIMEOUT", "20")
    monkeypatch.setenv(
        "TARGET_INSIDER_ONE_IDENTIFIER_MAPPINGS", '[{"type": "uuid", "field": "Id"}]'
    )
    config = config_from(
        TargetInsiderOne, SimpleNamespace(config={"partner_name": "p"}, parse_env=True)
    )
    assert config["request_timeout"] == 20.0
    assert config["identifier_mappings"] == [{"type": "uuid", "field": "Id"}]
    assert config["partner_name"] == "p"
    files_only = config_from(TargetInsiderOne, SimpleNamespace(config={"a": 1}, parse_env=False))
    assert files_only == {"a": 1}
