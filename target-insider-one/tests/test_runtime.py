"""The run's shared resources."""

from __future__ import annotations

import sys

from target_insider_one.runtime import GIL_SWITCH_INTERVAL_S
from target_insider_one.target import TargetInsiderOne


def test_a_run_shortens_the_gil_switch_interval_for_its_delivery_threads(make_config):
    default = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)  # CPython's default, whatever an earlier test set
        TargetInsiderOne(config=make_config(preflight=False))
        assert sys.getswitchinterval() == GIL_SWITCH_INTERVAL_S
    finally:
        sys.setswitchinterval(default)
