"""How the tap writes Singer messages to stdout.

The SDK's default writer serialises each message with simplejson and flushes stdout
after every line: at 100k records that is most of the tap's CPU and one system call per
record (stdout is unbuffered under ``PYTHONUNBUFFERED``, which Meltano and CI set).
``SingerWriter`` encodes with msgspec (as ``singer_sdk.contrib.msgspec`` does: Decimals
as exact JSON numbers) into its own buffer, and writes the buffer out after every
message that is *not* a RECORD, so each STATE reaches the target right after the records
it covers, and the records between two STATEs go out in writes of about
``FLUSH_BYTES``. ``time_extracted`` keeps the SDK writer's ``+00:00`` form (msgspec would
write ``Z``, which ``fromisoformat`` before Python 3.11 refuses).

Every value a record can hold (see :mod:`tap_sfmc_de.values`) encodes; a string msgspec
refuses (a lone surrogate, e.g. from a stream map) is written with the SDK's json
encoder instead, which escapes it, so no value can crash a run. msgspec writes non-ASCII
text as UTF-8 and escapes control characters; the three other characters that
``str.splitlines`` takes for line breaks (U+0085, U+2028, U+2029) are escaped too, so a
reader that splits the output that way still sees one message per line.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecWriter, enc_hook
from singer_sdk.singerlib.encoding.base import SingerMessageType
from singer_sdk.singerlib.encoding.simple import Message
from singer_sdk.singerlib.json import serialize_json
from typing_extensions import override

FLUSH_BYTES = 1 << 16
# UTF-8 of the line breaks msgspec leaves raw, and their JSON escapes. UTF-8 is
# self-synchronising, so these byte sequences can only be these characters.
_LINE_BREAKS = (
    (b"\xc2\x85", b"\\u0085"),
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
)
_ENCODER = msgspec.json.Encoder(enc_hook=enc_hook, decimal_format="number")


def encode_line(message: dict[str, Any], into: bytearray) -> None:
    """Append one Singer line (with its newline) for a message dict.

    Args:
        message: The message, JSON-ready except for Decimals and datetimes.
        into: The buffer to append to.
    """
    start = len(into)
    try:
        _ENCODER.encode_into(message, into, -1)
    except UnicodeEncodeError:  # a lone surrogate: the json encoder escapes it
        del into[start:]
        into += serialize_json(message).encode("utf-8")
    into += b"\n"


class SingerWriter(MsgSpecWriter):
    """msgspec encoding; RECORD lines buffered, every other message written at once."""

    def __init__(self) -> None:
        """Start with an empty buffer."""
        super().__init__()
        self._pending = bytearray()

    @override
    def serialize_message(self, message: Message) -> bytearray:
        """Encode a message as one line.

        Args:
            message: A Singer message object.

        Returns:
            The line, newline included.
        """
        line = bytearray()
        encode_line(_as_dict(message), line)
        return _escape_line_breaks(line)

    @override
    def write_message(self, message: Message) -> None:
        """Write a message; unless it is a RECORD, write out everything before it too.

        Args:
            message: The message to write.
        """
        encode_line(_as_dict(message), self._pending)
        if message.type != SingerMessageType.RECORD or len(self._pending) >= FLUSH_BYTES:
            self.flush()

    def write_record(self, message: dict[str, Any]) -> None:
        """Buffer a RECORD message given as a dict (the next non-RECORD writes it out).

        Args:
            message: ``type``, ``stream``, ``record`` and optional ``version`` and
                ``time_extracted``, as ``RecordMessage.to_dict`` would give them.
        """
        encode_line(message, self._pending)
        if len(self._pending) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write out the buffered lines and flush stdout."""
        out = sys.stdout.buffer
        with memoryview(_escape_line_breaks(self._pending)) as data:
            written = 0
            while written < len(data):  # unbuffered stdout (a FileIO) may write part of it
                written += out.write(data[written:])
        self._pending.clear()
        out.flush()


def _escape_line_breaks(lines: bytearray) -> bytearray:
    # Two scans for the lead bytes rule out all three in most buffers.
    if lines.isascii() or (b"\xc2\x85" not in lines and b"\xe2\x80" not in lines):
        return lines
    for raw, escaped in _LINE_BREAKS:
        if raw in lines:
            lines = lines.replace(raw, escaped)
    return lines


def _as_dict(message: Message) -> dict[str, Any]:
    data = message.to_dict()
    extracted = data.get("time_extracted")
    if isinstance(extracted, dt.datetime):
        data["time_extracted"] = extracted.isoformat()
    return data
