"""A log filter that hides secrets, whatever logger emitted the record."""

from __future__ import annotations

import logging

from typing_extensions import override

MIN_REDACTED_LENGTH = 6


class RedactingFilter(logging.Filter):
    """Replaces secrets in log records, whatever logger emitted them."""

    @override
    def __init__(self, secrets: tuple[str, ...]) -> None:
        """Create the filter.

        Args:
            secrets: Strings to hide.
        """
        super().__init__()
        # Very short values (test keys such as "k") would mangle every log line.
        self.secrets = tuple(s for s in secrets if s and len(s) >= MIN_REDACTED_LENGTH)
        self.targets: list[logging.Handler | logging.Logger] = []  # see install()

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        """Redact and keep the record.

        Args:
            record: The log record.

        Returns:
            Always True.
        """
        if not self.secrets:
            return True
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
            record.msg = message
            record.args = None
        return True


def install(secrets: tuple[str, ...], logger: logging.Logger) -> RedactingFilter:
    """Filter the root handlers and ``logger`` until :func:`uninstall`.

    Args:
        secrets: Strings to hide.
        logger: The plugin's logger.

    Returns:
        The filter (pass it to :func:`uninstall`).
    """
    redacting = RedactingFilter(secrets)
    redacting.targets = [*logging.getLogger().handlers, logger]
    for item in redacting.targets:
        item.addFilter(redacting)
    return redacting


def uninstall(redacting: RedactingFilter) -> None:
    """Remove the filter from everything :func:`install` filtered.

    Args:
        redacting: As returned by :func:`install`.
    """
    for item in redacting.targets:
        item.removeFilter(redacting)
