"""The SDK's standard target tests that apply to an API target, run against the sandbox.

Included (each replays an SDK ``.singer`` file through the target against the sandbox's
Insider emulator; records without a mapped identifier are dead-lettered, which is the
target's documented behaviour):

- cli_prints, array_data, camelcase, camelcase_complex_schema, duplicate_records,
  encoded_string_data, no_primary_keys, optional_attributes, pk_updates,
  record_missing_fields, record_missing_required_property, schema_updates,
  special_chars_in_attributes, invalid_schema, record_before_schema.

Left out, with the reason:

- record_missing_key_property: expects the target to stop with ``MissingKeyPropertiesError``.
  A tap that wrote such a row would write it again on every run, so stopping would block the
  stream forever; the target dead-letters it (``schema_validation_failed``) and goes on.
  ``test_record_missing_key_property_is_dead_lettered`` below replays the SDK's own file and
  checks what landed.

- multiple_state_messages: expects a STATE after every few records. The SDK emits STATE
  only after a full drain (end of input, 5-minute age, SIGTERM), and this target must not
  emit STATE before the batch holding the preceding records is settled; the SDK itself
  keeps this test out of its default target suite.
- schema_no_properties: its streams declare only an ``object_store`` object, so none of
  the mapped identifier fields can ever be present; the target refuses such a stream as a
  configuration error before reading its records (``field_check``), as
  ``test_e2e_input.py::test_stream_without_any_identifier_field_is_a_config_error`` checks
  with this very file.
"""

from __future__ import annotations

import json

import pytest
from singer_sdk.testing import get_target_test_class
from singer_sdk.testing.runners import TargetTestRunner
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.target_tests import (
    TargetArrayData,
    TargetCamelcaseComplexSchema,
    TargetCamelcaseTest,
    TargetCliPrintsTest,
    TargetDuplicateRecords,
    TargetEncodedStringData,
    TargetInvalidSchemaTest,
    TargetNoPrimaryKeys,
    TargetOptionalAttributes,
    TargetPrimaryKeyUpdates,
    TargetRecordBeforeSchemaTest,
    TargetRecordMissingOptionalFields,
    TargetRecordMissingRequiredProperty,
    TargetSchemaUpdates,
    TargetSpecialCharsInAttributes,
)
from target_insider_one.target import TargetInsiderOne

pytestmark = pytest.mark.e2e

CURATED = SingerTestSuite(
    kind="target",
    tests=[
        TargetCliPrintsTest,
        TargetArrayData,
        TargetCamelcaseTest,
        TargetCamelcaseComplexSchema,
        TargetDuplicateRecords,
        TargetEncodedStringData,
        TargetInvalidSchemaTest,
        TargetNoPrimaryKeys,
        TargetOptionalAttributes,
        TargetPrimaryKeyUpdates,
        TargetRecordBeforeSchemaTest,
        TargetRecordMissingOptionalFields,
        TargetRecordMissingRequiredProperty,
        TargetSchemaUpdates,
        TargetSpecialCharsInAttributes,
    ],
)

GENERIC_MAPPING = {
    "identifier_mappings": [
        {"type": "uuid", "field": "id"},
        {"type": "custom", "name": "source_id", "field": "Id"},
        {"type": "custom", "name": "doc_id", "field": "_id"},
    ],
    "attribute_mappings": {
        "name": "name",
        "info": "info",
        "fruits": "fruits",
        "metric": "metric",
        "optional": "optional_text",
    },
    "fixed_value_mappings": {"data_source": "sdk_standard_tests"},
    "backoff_base_seconds": 0.01,
}

_StandardTests = get_target_test_class(
    TargetInsiderOne,
    config={"partner_name": "placeholder", "api_key": "placeholder", **GENERIC_MAPPING},
    custom_suites=[CURATED],
    include_target_tests=False,
)


class TestTargetInsiderOneStandard(_StandardTests):
    """The curated standard suite, pointed at the sandbox for every test."""

    @pytest.fixture
    def runner(self, sandbox, tmp_path) -> TargetTestRunner:
        config = sandbox.target_config(
            **GENERIC_MAPPING, dead_letter_path=str(tmp_path / "dead.jsonl")
        )
        return TargetTestRunner(TargetInsiderOne, config=config)


def test_duplicate_records_land_as_two_profiles(sandbox, tmp_path):
    from importlib.resources import files

    from singer_sdk.testing import target_test_streams

    config = sandbox.target_config(**GENERIC_MAPPING, dead_letter_path=str(tmp_path / "d.jsonl"))
    runner = TargetTestRunner(
        TargetInsiderOne,
        config=config,
        input_filepath=files(target_test_streams) / "duplicate_records.singer",
    )
    runner.sync_all()
    profiles = sandbox.profiles()
    assert sorted(p["identifiers"]["uuid"] for p in profiles) == ["1", "2"]
    # Last write wins: records for one profile are applied in input order.
    by_id = {p["identifiers"]["uuid"]: p["attributes"]["custom"]["metric"] for p in profiles}
    assert by_id == {"1": 100, "2": 20}


def test_record_missing_key_property_is_dead_lettered(sandbox, tmp_path):
    from importlib.resources import files

    from singer_sdk.testing import target_test_streams

    dead = tmp_path / "d.jsonl"
    config = sandbox.target_config(**GENERIC_MAPPING, dead_letter_path=str(dead))
    runner = TargetTestRunner(
        TargetInsiderOne,
        config=config,
        input_filepath=files(target_test_streams) / "record_missing_key_property.singer",
    )
    runner.sync_all()
    assert sandbox.profiles() == []
    (letter,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert letter["reason"] == "schema_validation_failed"
    assert "['id']" in letter["message"]
    assert letter["record"] == {"metric": 8214}
