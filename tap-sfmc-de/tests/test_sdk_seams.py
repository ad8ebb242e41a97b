"""The private singer-sdk members this tap relies on still exist, as it expects them.

Each row names where the tap overrides or uses the member; after a singer-sdk upgrade that
renames or changes one, this test fails with that pointer (the override's docstring says
why it exists). Every override also carries ``@override``, checked below.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import pkgutil
from importlib.metadata import version

import pytest
import tap_sfmc_de
from singer_sdk import Stream
from singer_sdk.plugin_base import PluginBase

# (owner, member, parameters as "name" / "*name" for keyword-only, where the tap uses it)
PRIVATE_SEAMS = [
    (Stream, "_increment_stream_state", ["self", "latest_record", "*context"],
     "tap_sfmc_de/streams.py: DataExtensionStream._increment_stream_state"),
    (Stream, "_write_state_message", ["self"],
     "tap_sfmc_de/streams.py: DataExtensionStream._save_state emits STATE with it"),
    (PluginBase, "_validate_config", ["self", "*raise_errors"],
     "tap_sfmc_de/tap.py: TapSfmcDe._validate_config (secret values hidden from errors)"),
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


def test_private_sdk_attributes_still_exist():
    sdk = version("singer-sdk")
    # TapSfmcDe._validate_config validates self._config itself.
    assert "self._config = config_dict" in inspect.getsource(PluginBase.__init__), (
        f"singer-sdk {sdk} no longer stores the config in self._config: adapt "
        "tap_sfmc_de/tap.py: TapSfmcDe._validate_config"
    )
    # DataExtensionStream._save_state marks the state unflushed so the SDK writes it.
    manager = inspect.signature(Stream.state_manager.fget).return_annotation
    assert "StreamStateManager" in str(manager)
    from singer_sdk.streams._state import StreamStateManager

    assert "self.is_flushed = " in inspect.getsource(StreamStateManager.__init__), (
        f"singer-sdk {sdk} dropped state_manager.is_flushed: adapt "
        "tap_sfmc_de/streams.py: DataExtensionStream._save_state"
    )
    # TapSfmcDe._validate_config uses the SDK's validator, which fills the defaults.
    from singer_sdk import plugin_base

    assert hasattr(plugin_base, "JSONSchemaValidator"), (
        f"singer-sdk {sdk} has no plugin_base.JSONSchemaValidator: adapt "
        "tap_sfmc_de/tap.py: TapSfmcDe._validate_config"
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
    missing = [name for name, f in _overrides(tap_sfmc_de) if not hasattr(f, "__override__")]
    assert missing == [], f"add @override (typing_extensions) to: {', '.join(missing)}"
