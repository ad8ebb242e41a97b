"""Exceptions with messages that name the problem and the fix.

Messages never contain secrets: no client secret, access token or refresh token is
ever passed into an exception, and request bodies are never echoed.
"""

from __future__ import annotations

from typing import Any

from singer_sdk.exceptions import ConfigValidationError, FatalAPIError
from typing_extensions import override


class SfmcConfigError(ConfigValidationError):
    """A setting is missing or invalid (or the DE does not fit the settings)."""

    @override
    def __init__(self, message: str) -> None:
        """Also list the message as an error: the SDK CLI logs only ``errors``.

        Args:
            message: What is wrong and how to fix it.
        """
        super().__init__(message, errors=[message])


class SfmcApiError(FatalAPIError):
    """SFMC refused a request in a way retrying cannot fix."""

    @override
    def __init__(self, message: str, response: Any = None) -> None:
        """Keep the response (for status checks) out of the message.

        Args:
            message: Safe, human-readable message.
            response: The HTTP response, if any (never rendered).
        """
        super().__init__(message)
        self.response = response

    @property
    def status_code(self) -> int | None:
        """HTTP status of the failed response, if any."""
        return getattr(self.response, "status_code", None)


class SfmcAuthError(SfmcApiError):
    """The token endpoint refused to mint a token."""


class RetriesExhaustedError(SfmcApiError):
    """A transient failure persisted through every retry."""


class TokenExpiredError(Exception):
    """The API rejected the access token; the caller re-mints once and retries."""


class ValueConversionError(SfmcApiError):
    """A key or replication-key value could not be converted; emitting it would corrupt state."""
