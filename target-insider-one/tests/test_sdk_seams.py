"""The private singer-sdk members this target relies on still exist, as it expects them.

Each row names where the target overrides or uses the member; after a singer-sdk upgrade
that renames or changes one, this test fails with that pointer (the override's docstring
says why it exists). Every override also carries ``@override``, checked below.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import pkgutil
from importlib.metadata import version

import pytest
import target_insider_one
from singer_sdk import Target
from singer_sdk.plugin_base import PluginBase
from singer_sdk.sinks import Sink

TARGET = "target_insider_one/target.py"
# (owner, member, parameters as "name" / "*name" for keyword-only, where the target uses it)
PRIVATE_SEAMS = [
    (Target, "_process_state_message", ["self", "message_dict"],
     f"{TARGET}: TargetInsiderOne._process_state_message (STATE from the ledger)"),
    (Target, "_process_record_message", ["self", "message_dict"],
     f"{TARGET}: TargetInsiderOne._process_record_message (STATE after a drain)"),
    (Target, "_process_schema_message", ["self", "message_dict"],
     f"{TARGET}: records held for the phone worker are processed before it"),
    (Target, "_process_activate_version_message", ["self", "message_dict"],
     f"{TARGET}: records held for the phone worker are processed before it"),
    (Target, "_process_batch_message", ["self", "message_dict"],
     f"{TARGET}: records held for the phone worker are processed before it"),
    (Target, "_handle_max_record_age", ["self"],
     f"{TARGET}: TargetInsiderOne._handle_max_record_age (STATE after a timed drain)"),
    (Target, "_handle_termination", ["self", "signum", "frame"],
     f"{TARGET}: TargetInsiderOne._handle_termination (exit on SIGTERM without draining)"),
    (Target, "_write_state_message", ["self", "state"],
     f"{TARGET}: TargetInsiderOne._emit_safe_state writes the safe STATE with it"),
    (PluginBase, "_validate_config", ["self", "*raise_errors"],
     f"{TARGET}: TargetInsiderOne._validate_config (API key redacted from errors)"),
    (Target, "_assert_line_requires", ["self", "message_dict", "requires"],
     f"{TARGET}: TargetInsiderOne._process_state_message checks the STATE line with it"),
    (Sink, "_parse_timestamps_in_record", ["self", "record", "schema", "treatment"],
     "target_insider_one/sinks.py: InsiderUpsertSink._parse_timestamps_in_record"),
]  # fmt: skip


def _parameters(function) -> list[str]:
    return [
        f"*{p.name}" if p.kind is inspect.Parameter.KEYWORD_ONLY else p.name
        for p in inspect.signature(function).parameters.values()
    ]


@pytest.mark.parametrize(
    ("owner", "name", "expected", "where"), PRIVATE_SEAMS, ids=[r[1] for r in PRIVATE_SEAMS]
)
def test_private_sdk_member_still_exists_with_its_signature(owner, name, expected, where):
    sdk = version("singer-sdk")
    member = getattr(owner, name, None)
    assert member is not None, (
        f"singer-sdk {sdk} has no {owner.__name__}.{name}: {where} relies on it; "
        "find its replacement in the SDK's changelog and adapt that code"
    )
    assert _parameters(member) == expected, (
        f"singer-sdk {sdk} changed {owner.__name__}.{name} to {_parameters(member)} "
        f"(expected {expected}): {where} relies on it; adapt that code"
    )


def test_sdk_still_keeps_the_config_in_private_config():
    # TargetInsiderOne._validate_config reads self._config to redact the API key.
    assert "self._config = config_dict" in inspect.getsource(PluginBase.__init__), (
        f"singer-sdk {version('singer-sdk')} no longer stores the config in self._config: "
        f"adapt {TARGET}: TargetInsiderOne._validate_config"
    )


def test_sdk_still_drains_through_handle_max_record_age():
    # The record handler drains full sinks and then checks the record age; both overrides
    # emit the STATE a drain made safe.
    source = inspect.getsource(Target._process_record_message)
    assert "self._handle_max_record_age()" in source, (
        f"singer-sdk {version('singer-sdk')} drains differently: check that "
        f"{TARGET}: TargetInsiderOne._emit_safe_state still runs after every drain"
    )


def _overrides(package):
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            if issubclass(cls, enum.Enum):
                continue  # the Enum machinery's own members
            for name, member in vars(cls).items():
                function = getattr(member, "__func__", member)
                function = getattr(function, "fget", function)
                if not inspect.isfunction(function):
                    continue
                if any(name in vars(base) for base in cls.__mro__[1:] if base is not object):
                    yield f"{module.__name__}.{cls.__name__}.{name}", function


def test_every_override_says_so():
    missing = [name for name, f in _overrides(target_insider_one) if not hasattr(f, "__override__")]
    assert missing == [], f"add @override (typing_extensions) to: {', '.join(missing)}"


def test_sdk_record_steps_are_still_the_ones_the_plain_record_path_repeats():
    # TargetInsiderOne._process_plain_record repeats these steps for records the SDK would
    # pass through unchanged: if the SDK adds or reorders one, that path must follow.
    source = inspect.getsource(Target._process_record_message)
    steps = [
        'copy.copy(message_dict["record"])',
        "stream_map.transform(raw_record)",
        "sink._get_context(transformed_record)",
        "sink._remove_sdc_metadata_from_record(transformed_record)",
        "sink._validate_and_parse(transformed_record)",
        "sink.preprocess_record(transformed_record, context)",
        "sink._singer_validate_message(transformed_record)",
        "sink.tally_record_read()",
        "sink.process_record(transformed_record, context)",
        "sink.record_counter_metric.increment()",
        "sink._after_process_record(context)",
        "self.drain_one(sink)",
        "self._handle_max_record_age()",
    ]
    positions = [source.find(step) for step in steps]
    assert -1 not in positions, [s for s, p in zip(steps, positions, strict=True) if p < 0]
    assert positions == sorted(positions), f"{TARGET}: TargetInsiderOne._process_plain_record"
    assert source.count("sink.") == 14, f"{TARGET}: a new sink step; repeat it in the plain path"


def test_sdk_still_decides_the_record_age_drain_with_the_test_the_plain_path_repeats():
    # TargetInsiderOne._process_plain_record calls _handle_max_record_age only when this
    # test is true (it runs after every record).
    source = inspect.getsource(Target._handle_max_record_age)
    assert "if self._max_record_age_in_minutes > self._MAX_RECORD_AGE_IN_MINUTES:" in source, (
        f"singer-sdk {version('singer-sdk')} decides the record-age drain differently: "
        f"adapt {TARGET}: TargetInsiderOne._process_plain_record"
    )
