"""Singer table versions for full passes, so a target can drop rows deleted in SFMC.

In ``fetch_mode: full`` every pass reads every row, but a pass may span runs (the page
budget ends a run mid-pass; the cursor resumes it). The SDK's own ACTIVATE_VERSION, sent
at the start of every run, would tell a target to drop the rows that earlier runs of the
same pass delivered. Here a pass keeps one version from its first page to its last (saved
in the stream's state), every record of the pass carries it, and ACTIVATE_VERSION is sent
once the pass has read the last row: a target that honours it (e.g. target-postgres) then
removes the rows of older versions, i.e. the rows no longer in the DE.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

STATE_KEY = "table_version"


def pass_version(state: Mapping[str, Any], clock: Callable[[], float] = time.time) -> int:
    """The version of the pass this run works on: the saved one, or a new, later one.

    Args:
        state: The stream's state at the start of the run.
        clock: Seconds since the epoch.

    Returns:
        Milliseconds since the epoch at the pass's first page.
    """
    saved = state.get(STATE_KEY)
    if "window" in state and isinstance(saved, int) and not isinstance(saved, bool):
        return saved  # a pass in progress
    return int(clock() * 1000)


def with_version(state: dict[str, Any], version: int) -> dict[str, Any]:
    """The state to save: the version while the pass is open, none once it completed.

    Args:
        state: State the window algorithm produced (``window`` present while paging).
        version: The pass's version.

    Returns:
        The same dict, with ``table_version`` set or removed.
    """
    if "window" in state:
        state[STATE_KEY] = version
    else:
        state.pop(STATE_KEY, None)
    return state
