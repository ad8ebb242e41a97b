"""``typing.override`` for Python 3.11 too: the sandbox has no dependencies."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

_F = TypeVar("_F", bound=Callable[..., object])

if sys.version_info >= (3, 12):
    from typing import override
else:

    def override(method: _F) -> _F:
        """Mark ``method`` as overriding its base class's (what ``typing.override`` does)."""
        method.__override__ = True  # type: ignore[attr-defined]
        return method


__all__ = ["override"]
