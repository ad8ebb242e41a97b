"""pytest fixtures (registered through the ``pytest11`` entry point).

- ``sandbox``: one sandbox process per test session, reset before each test.
- ``sandbox_factory``: start extra sandboxes with special flags; stopped after the test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from api_sandbox.testing import SandboxProcess


@pytest.fixture(scope="session")
def sandbox_session() -> Iterator[SandboxProcess]:
    """The shared sandbox process (prefer the ``sandbox`` fixture, which also resets it)."""
    with SandboxProcess() as proc:
        yield proc


@pytest.fixture
def sandbox(sandbox_session: SandboxProcess) -> SandboxProcess:
    """The session's sandbox, reset to its startup state for this test."""
    sandbox_session.reset()
    return sandbox_session


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxProcess]]:
    """Start sandboxes with custom flags: ``sandbox_factory(rows=10, extra_args=[...])``."""
    started: list[SandboxProcess] = []

    def factory(**kwargs: Any) -> SandboxProcess:
        proc = SandboxProcess(**kwargs)
        started.append(proc)
        return proc.__enter__()

    try:
        yield factory
    finally:
        with contextlib.ExitStack() as stack:  # stops every one, even if a stop raises
            for proc in started:
                stack.callback(proc.__exit__, None, None, None)
