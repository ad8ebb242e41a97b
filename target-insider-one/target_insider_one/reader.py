r"""Reading Singer lines without ever logging their content.

The SDK's reader (``singer_sdk.io_base.SingerReader``) logs a line it cannot parse in full
at ERROR (``logger.exception("Unable to parse:\n%s", line)``) and raises an exception that
quotes it again; a line missing its ``type`` is quoted too. Lines are records: emails and
phone numbers would land in the logs. This reader says where and why instead.

Lines are decoded with ``msgspec`` (several times faster than ``json.loads``, which was
about a tenth of the target's CPU time), into the same values the SDK's reader gives:
floats become ``Decimal``. Any line ``msgspec`` refuses (``NaN``, a lone surrogate escape,
an integer over 64 bits... or truly broken JSON) is decoded again the SDK's way, so what
is accepted, the values, and the messages for broken lines are exactly as before.

Seam: ``Target.message_reader_class`` (the class the SDK instantiates as
``self.message_reader``), and the two methods ``GenericSingerReader.process_lines`` calls for
every line: ``deserialize_json`` and ``assert_line_requires``. ``test_reader.py`` fails with
a pointer here if a singer-sdk upgrade stops calling them.
"""

from __future__ import annotations

import decimal
import json
from typing import Any

import msgspec
from singer_sdk.io_base import SingerReader
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.singerlib.json import deserialize_json
from typing_extensions import override

_DECODER = msgspec.json.Decoder(float_hook=decimal.Decimal)


class RedactingSingerReader(SingerReader):
    """The SDK's reader, with messages that name the line number, never its content."""

    @override
    def __init__(self) -> None:
        """Create the reader."""
        super().__init__()
        self.line_number = 0

    @override
    def deserialize_json(self, line: str) -> dict:
        """Parse one line.

        Args:
            line: A line of input.

        Returns:
            The message.

        Raises:
            InvalidInputLine: If it is not JSON the SDK can decode (content not shown).
        """
        self.line_number += 1
        try:
            return _DECODER.decode(line)  # type: ignore[no-any-return]
        except (msgspec.MsgspecError, UnicodeError, ValueError, RecursionError):
            pass  # decoded again below: same acceptance and messages as the SDK's reader
        try:
            return deserialize_json(line)
        except json.JSONDecodeError as exc:
            why = f"{exc.msg} at character {exc.pos}"
        except (ValueError, RecursionError) as exc:  # e.g. an integer over 4,300 digits
            why = type(exc).__name__
        msg = (
            f"Input line {self.line_number} is not valid JSON ({why}; {len(line)} characters): "
            "the tap's output is broken or was cut off. The line is not shown because it may "
            "hold personal data."
        )
        raise InvalidInputLine(msg) from None  # the target logs it, with the run summary

    @staticmethod
    @override
    def assert_line_requires(line_dict: dict[str, Any], requires: set[str]) -> None:
        """Check that a message has the keys it needs, naming only the keys.

        Args:
            line_dict: The message.
            requires: Keys it must have.

        Raises:
            InvalidInputLine: Naming the missing keys and the keys present, not the values.
        """
        if not requires.issubset(line_dict):
            missing = ", ".join(sorted(requires - set(line_dict)))
            present = ", ".join(sorted(map(str, line_dict))) or "none"
            msg = f"Input message is missing required key(s) {missing} (its keys: {present})"
            raise InvalidInputLine(msg)
