"""Malformed input is reported by line number, never by content."""

import inspect
import json

import pytest
from singer_sdk.singerlib.encoding.base import GenericSingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine
from target_insider_one.reader import RedactingSingerReader
from target_insider_one.target import TargetInsiderOne

from .conftest import schema_msg
from .e2e_helpers import run_cli

POINTER = (
    "singer-sdk changed the seam target_insider_one/reader.py relies on (see its docstring): "
    "malformed input lines may be logged in full again"
)


def test_the_sdk_still_reads_through_the_seam_the_reader_overrides(make_config):
    target = TargetInsiderOne(config=make_config(preflight=False))
    assert isinstance(target.message_reader, RedactingSingerReader), POINTER
    source = inspect.getsource(GenericSingerReader.process_lines)
    assert "self.deserialize_json(line)" in source, POINTER
    assert "self.assert_line_requires(" in source, POINTER


@pytest.mark.parametrize(
    "line",
    [
        '{"type": "RECORD", "record": {"EmailAddress": "ada@example.com"',  # cut off
        '{"type": "RECORD", "record": {"n": '
        + "9" * 5000
        + ', "EmailAddress": "ada@example.com"}}',
        "[" * 100_000 + '"ada@example.com"',
    ],
    ids=["cut-off", "huge-int", "deep"],
)
def test_unparseable_line_is_reported_without_its_content(line):
    reader = RedactingSingerReader()
    reader.deserialize_json('{"type": "STATE", "value": {}}')
    with pytest.raises(InvalidInputLine) as info:
        reader.deserialize_json(line)
    assert "Input line 2 is not valid JSON" in str(info.value)
    assert "ada@example.com" not in str(info.value)


def test_message_without_type_names_keys_not_values():
    with pytest.raises(InvalidInputLine) as info:
        RedactingSingerReader.assert_line_requires({"record": {"e": "ada@example.com"}}, {"type"})
    assert str(info.value) == "Input message is missing required key(s) type (its keys: record)"


@pytest.mark.parametrize(
    "bad",
    [
        '{"type": "RECORD", "stream": "Customers", "record": {"EmailAddress": "ada@example.com"\n',
        '{"stream": "Customers", "record": {"EmailAddress": "ada@example.com"}}\n',
    ],
    ids=["malformed", "no-type"],
)
def test_cli_stops_cleanly_and_never_logs_the_line(make_config, tmp_path, bad):
    config = make_config(preflight=False, dry_run=True)
    schema = json.dumps(schema_msg()) + "\n"
    result = run_cli(config, schema + bad, tmp_path)
    assert result.returncode == 1
    assert "ada@example.com" not in result.stderr
    assert "Traceback" not in result.stderr
    assert "target-insider-one stopped: Input" in result.stderr
