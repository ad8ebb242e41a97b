"""No poison records: any JSON value the SDK can decode is mapped, sent or dead-lettered.

Values are generated as the SDK's reader would produce them: JSON text (with lone
surrogate escapes, control characters, U+2028/2029, huge numbers, nesting) decoded by
``singer_sdk.singerlib.json.deserialize_json`` (floats become ``Decimal``), plus strings
with lone surrogates as Python's ``surrogateescape`` stdin produces for non-UTF-8 bytes.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from singer_sdk.singerlib.json import deserialize_json
from target_insider_one.deadletter import DeadLetterWriter
from target_insider_one.mapping import UserMapper
from target_insider_one.payload import build_body, plan_requests, serialize_user
from target_insider_one.phone import INSIDER_PHONE_RE, PhoneNumberError, PhoneOptions, to_e164
from target_insider_one.settings import parse_settings
from target_insider_one.values import (
    InvalidValueError,
    converter_for_kind,
    to_birthday,
    to_bool,
    to_country,
    to_email,
    to_int_array,
    to_language,
    to_number,
    to_string,
    to_utc_datetime,
)

from .conftest import CUSTOMERS_SCHEMA, DEMO_MAPPING

# Every code point, lone surrogates included.
TEXT = st.text(st.characters(codec=None), max_size=40)
SPECIAL = st.sampled_from(
    ["\ud800", "\udcff", "\u2028", "\u2029", "\x00", "\n", "\u200b", "\ufeff", "\u00ad", ""]
)
TRICKY_TEXT = st.builds(lambda a, b, c: a + b + c, TEXT, SPECIAL, TEXT)
NUMBER_TEXT = st.sampled_from(
    ["1e400", "-1e400", "1e-400", "123456789012345678901234567890", "1.5", "0", "-0.0"]
)


def _decoded(text: str):
    """What the SDK's reader gives for a JSON text."""
    return deserialize_json(text)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**300), max_value=10**300),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: Decimal(repr(f))),
    NUMBER_TEXT.map(_decoded),
    st.sampled_from([float("nan"), float("inf")]),  # json.loads accepts NaN / Infinity
    TEXT,
    TRICKY_TEXT,
    st.text(max_size=5).map(lambda s: s * 2000),  # long strings
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [*CUSTOMERS_SCHEMA["properties"], "Extra"]
RECORDS = st.fixed_dictionaries({}, optional=dict.fromkeys(FIELDS, JSON_VALUES))


def _mapper(**overrides) -> UserMapper:
    config = {"partner_name": "acme", "api_key": "k", **DEMO_MAPPING, **overrides}
    config["attribute_mappings"] = {
        **DEMO_MAPPING["attribute_mappings"],
        "Phone": "phone_number",
        "EmailAddress": "email",
        "Extra": "extra_value",
        "ModifiedDate": "modified_at",
    }
    return UserMapper(parse_settings(config), CUSTOMERS_SCHEMA)


MAPPERS = [
    _mapper(phone_default_region="GB"),
    _mapper(invalid_identifier_policy="skip_record", invalid_attribute_policy="skip_record"),
    _mapper(empty_string_policy="send", normalize_emails=False),
]


@pytest.mark.parametrize("mapper", MAPPERS, ids=["default", "skip_record", "send_blanks"])
@settings(max_examples=150)
@given(record=RECORDS)
def test_any_record_maps_to_a_sendable_user_or_a_reason(mapper, record):
    result = mapper.map_record(record)
    if result.user is None:
        assert result.skip_reason
        return
    data = serialize_user(result.user)
    data.decode("utf-8")  # strict: valid UTF-8
    assert data.decode().splitlines() == [data.decode()]  # no raw U+0085/2028/2029
    assert json.loads(data) == result.user
    for value in result.user["identifiers"].values():
        for text in value.values() if isinstance(value, dict) else [value]:
            assert text == text.strip()
            assert all(c not in text for c in "\u200b\u200d\ufeff\u00ad\x00\n")


CONVERTERS = [
    to_bool,
    to_number,
    lambda v: to_number(v, integer=True),
    to_string,
    to_utc_datetime,
    to_birthday,
    to_int_array,
    to_language,
    to_country,
    to_email,
    *(converter_for_kind(k) for k in ("array", "any", "object", "date")),
]


@settings(max_examples=200)
@given(value=JSON_VALUES, index=st.integers(0, len(CONVERTERS) - 1))
def test_converters_raise_only_the_documented_rejection(value, index):
    try:
        converted = CONVERTERS[index](value)
    except InvalidValueError as exc:
        reason = exc.reason
    else:
        reason = "converted"
        json.dumps(converted, allow_nan=False)  # what the payload needs
    assert reason.strip()


@settings(max_examples=200)
@given(
    value=st.one_of(JSON_VALUES, TRICKY_TEXT),
    region=st.sampled_from([None, "GB", "US"]),
    normalize=st.booleans(),
)
def test_phone_raises_only_phone_number_error(value, region, normalize):
    try:
        e164 = to_e164(value, PhoneOptions(normalize=normalize, default_region=region))
    except PhoneNumberError as exc:
        e164, reason = None, exc.reason
    else:
        reason = "phone_ok"
    assert reason.startswith("phone_")
    assert e164 is None or INSIDER_PHONE_RE.fullmatch(e164)


@settings(max_examples=100)
@given(
    texts=st.lists(st.one_of(TEXT, TRICKY_TEXT).filter(lambda s: s.strip()), max_size=8),
    max_bytes=st.integers(1000, 3000),
)
def test_payload_bodies_are_utf8_json_within_limits(texts, max_bytes):
    users = []
    for text in texts:
        user = {"identifiers": {"uuid": text}, "attributes": {"name": text}}
        try:
            users.append(serialize_user(user))
        except UnicodeEncodeError:
            continue  # lone surrogates: mapping rejects those before this point
    plans, oversize = plan_requests(users, skip_hook=True, max_users=3, max_bytes=max_bytes)
    assert sorted([i for p in plans for i in p.items] + oversize) == list(range(len(users)))
    for plan in plans:
        assert len(plan.body) <= max_bytes
        assert plan.body == build_body([users[i] for i in plan.items], True)
        body = json.loads(plan.body.decode("utf-8"))
        assert len(body["users"]) == len(plan.items) <= 3


def _same_text(value):
    """What a JSON reader gives back: a surrogate pair written as two escapes is one char."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
    if isinstance(value, dict):
        return {_same_text(k): _same_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_same_text(v) for v in value]
    return value


def _plain(value):
    """Records holding only what the dead-letter line keeps exactly."""
    if isinstance(value, float | Decimal) or (isinstance(value, int) and abs(value) > 2**53):
        return False
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return True


@settings(max_examples=150)
@given(record=RECORDS, stream=TRICKY_TEXT, message=TRICKY_TEXT)
def test_dead_letter_line_is_utf8_json_and_round_trips(tmp_path_factory, record, stream, message):
    path = tmp_path_factory.mktemp("dl") / "dead.jsonl"
    writer = DeadLetterWriter(path, run_id="r", redact=("super-secret-key",))
    assert writer.write(reason="x", message=message, stream=stream, record=record)
    writer.close()
    raw = path.read_bytes()
    text = raw.decode("utf-8")  # strict
    lines = text.split("\n")
    assert lines[-1] == ""
    assert len(lines) == 2
    assert text.splitlines() == [lines[0]]  # no U+2028/2029 or other breaks inside
    entry = json.loads(lines[0])
    assert entry["stream"] == _same_text(stream)
    if _plain(record):
        assert entry["record"] == _same_text(record)
    assert path.stat().st_mode & 0o777 == 0o600
