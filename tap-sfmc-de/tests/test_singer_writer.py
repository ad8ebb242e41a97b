"""SingerWriter: every record the tap can produce is one line json.loads reads back the same."""

import datetime as dt
import json
from decimal import Decimal

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from singer_sdk.singerlib import RecordMessage, StateMessage
from tap_sfmc_de.client import decoded_json
from tap_sfmc_de.schema import DEField
from tap_sfmc_de.singer_writer import FLUSH_BYTES, SingerWriter
from tap_sfmc_de.values import ConversionProblemError, FieldConverter

CST = dt.timezone(dt.timedelta(hours=-6))
SFMC_TYPES = ("Text", "EmailAddress", "Phone", "Number", "Decimal", "Boolean", "Date")
# Any code point; surrogates, control characters and the line breaks str.splitlines knows
# (U+0085, U+2028, U+2029) drawn often, since they are rare in a uniform draw.
ANY_CHAR = (
    st.characters(codec=None, exclude_categories=())
    | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())
    | st.characters(max_codepoint=0x1F, exclude_categories=())
    | st.sampled_from(["\x85", "\u2028", "\u2029", "\r", "\n", '"', "\\"])
)
RAW = (
    st.lists(ANY_CHAR).map("".join)
    | st.from_regex(r"-?\d{1,40}(\.\d{0,30})?(e-?\d{1,3})?", fullmatch=True)
    | st.builds(
        "{}/{}/{} {}:{:02d}:{:02d} {}".format,
        st.integers(1, 12),
        st.integers(1, 31),
        st.integers(1, 9999),
        st.integers(1, 12),
        st.integers(0, 59),
        st.integers(0, 59),
        st.sampled_from(["AM", "PM"]),
    )
    | st.sampled_from(["True", "no", "", "12/31/9999 11:59:59 PM", "NaN", "1e999999999"])
)
CONVERTERS = [FieldConverter(t, DEField(t, t).kind, CST) for t in SFMC_TYPES]


def convert(raw_values):
    """What DataExtensionStream._convert makes of a row: typed values, null if unparsable."""
    record = {}
    for converter, raw in zip(CONVERTERS, raw_values, strict=True):
        try:
            record[converter.name] = converter.convert(raw)
        except ConversionProblemError:
            record[converter.name] = None
    return record


def written_lines(capsysbinary, writer):
    writer.flush()
    return capsysbinary.readouterr().out.split(b"\n")[:-1]


@given(rows=st.lists(st.tuples(*[RAW] * len(SFMC_TYPES)), min_size=1, max_size=5))
@settings(max_examples=200)
def test_any_record_the_tap_can_produce_is_one_line_that_reads_back_the_same(rows):
    with pytest.MonkeyPatch.context() as mp:
        out = _Stdout()
        mp.setattr("sys.stdout", out)
        writer = SingerWriter()
        messages = []
        for raw_values in rows:
            message = {"type": "RECORD", "stream": "de_x", "record": convert(raw_values)}
            message["time_extracted"] = "2024-05-08T21:04:05.123456+00:00"
            messages.append(message)
            writer.write_record(message)
        writer.flush()
    text = out.buffer.getvalue().decode("utf-8")  # strict: valid UTF-8
    lines = text.splitlines()  # also the readers that split on U+2028 and friends
    assert len(lines) == len(messages)
    for line, message in zip(lines, messages, strict=True):
        read = json.loads(line, parse_float=Decimal)
        assert read == message
        for name, value in message["record"].items():  # True is not 1, 1 is not 1.0
            # JSON has one number type: Decimal("0") reads back as 0 (the SDK's writer too).
            expected = (int, Decimal) if isinstance(value, Decimal) else (type(value),)
            assert type(read["record"][name]) in expected


def test_records_wait_in_the_buffer_until_a_state_message(capsysbinary):
    writer = SingerWriter()
    writer.write_record({"type": "RECORD", "stream": "de_x", "record": {"a": Decimal("1.10")}})
    assert capsysbinary.readouterr().out == b""
    writer.write_message(StateMessage(value={"bookmarks": {}}))
    lines = capsysbinary.readouterr().out.split(b"\n")
    assert lines == [
        b'{"type":"RECORD","stream":"de_x","record":{"a":1.10}}',
        b'{"type":"STATE","value":{"bookmarks":{}}}',
        b"",
    ]


def test_a_full_buffer_is_written_without_waiting(capsysbinary):
    writer = SingerWriter()
    record = {"type": "RECORD", "stream": "de_x", "record": {"a": "x" * 1000}}
    for _ in range(FLUSH_BYTES // 1000 + 1):
        writer.write_record(record)
    assert capsysbinary.readouterr().out.count(b"\n") > 0


def test_a_lone_surrogate_from_a_stream_map_is_escaped_not_a_crash(capsysbinary):
    # The converters never let one through; a stream map expression could.
    writer = SingerWriter()
    at = dt.datetime(2024, 5, 8, 21, 4, 5, tzinfo=dt.UTC)
    writer.write_message(RecordMessage(stream="de_x", record={"a": "x\ud800"}, time_extracted=at))
    (line,) = written_lines(capsysbinary, writer)
    message = json.loads(line)
    assert message["record"] == {"a": "x\ud800"}
    assert message["time_extracted"] == "2024-05-08T21:04:05+00:00"  # not msgspec's "Z"


# --- decoded_json: msgspec where it can, the same result as response.json() always -------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(ANY_CHAR),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(ANY_CHAR), inner, max_size=4)
    ),
    max_leaves=12,
)


def response(body: bytes, encoding: str | None = "utf-8") -> requests.Response:
    reply = requests.Response()
    reply._content = body
    reply.encoding = encoding
    reply.status_code = 200
    return reply


@given(value=JSON, ensure_ascii=st.booleans())
@settings(max_examples=200)
def test_decoded_json_is_what_response_json_gives(value, ensure_ascii):
    try:
        body = json.dumps(value, ensure_ascii=ensure_ascii).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate cannot be raw UTF-8: only escaped
        body = json.dumps(value).encode("utf-8")
    assert outcome(decoded_json, body) == outcome(requests.Response.json, body)
    reply = response(body)
    if outcome(decoded_json, body)[0] == "ok":
        assert decoded_json(reply) is decoded_json(reply)  # decoded once per response


@pytest.mark.parametrize("body", [b'{"a": NaN}', b'{"a": "\\ud800"}', b"[1e400]", b"[1e5]"])
def test_what_msgspec_refuses_is_decoded_as_before(body):
    assert outcome(decoded_json, body) == outcome(requests.Response.json, body)


def outcome(decode, body):
    """The decoded value, or that the body was refused as JSON (a ValueError)."""
    try:
        return "ok", repr(decode(response(body)))
    except ValueError:
        return "not JSON", None


def test_a_body_in_another_charset_is_decoded_by_its_charset():
    body = '{"a": "caf\xe9"}'.encode("latin-1")
    assert decoded_json(response(body, "ISO-8859-1")) == {"a": "caf\xe9"}


def test_a_truncated_body_is_a_json_error():  # the retry loop retries a ValueError
    with pytest.raises(ValueError, match="Expecting"):
        decoded_json(response(b'{"items": [{"keys"'))


class _Stdout:
    """A stand-in for sys.stdout with a binary buffer (hypothesis reruns in one test)."""

    def __init__(self):
        import io

        self.buffer = io.BytesIO()


@pytest.mark.parametrize("body", [b"[" * 200_000, b'{"items": ' + b"[" * 200_000 + b"]" * 200_000])
def test_a_body_nested_too_deeply_is_a_json_error(body):  # retried, not a traceback
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        decoded_json(response(body))
