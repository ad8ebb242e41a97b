"""The SDK's standard tap tests (``get_tap_test_class``) against a real sandbox.

The SDK builds the per-stream test parameters at collection time by instantiating the tap
(discovery over HTTP), so this module starts its own small sandbox process when it is
imported; it is stopped at interpreter exit (and the sandbox also exits with its parent).
"""

from __future__ import annotations

import atexit

import pytest
from api_sandbox.testing import SandboxProcess
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from tap_sfmc_de.tap import TapSfmcDe

_SANDBOX = SandboxProcess(rows=300, seed=11).start()
atexit.register(_SANDBOX.stop)

# Small pages and a 2-page cap: the SDK suite syncs everything once per test class, and
# two pages exercise paging and a mid-window STATE without slowing the suite down.
CONFIG = _SANDBOX.tap_config(page_size=100, max_pages_per_run=5)

_StandardTests = get_tap_test_class(
    TapSfmcDe,
    config=CONFIG,
    suite_config=SuiteConfig(max_records_limit=None),
)


@pytest.mark.e2e
class TestTapSfmcDeStandard(_StandardTests):  # type: ignore[misc,valid-type]
    """Every standard tap, stream and attribute test; nothing is excluded."""
