r"""Text that Python can hold but UTF-8, JSON readers or Insider's identifiers cannot.

A Singer line can carry text that is not valid Unicode: a JSON escape of a lone UTF-16
surrogate (``"\\ud800"``), or a non-UTF-8 byte that Python's stdin turns into a lone
surrogate (``surrogateescape``). Such a string cannot be encoded as UTF-8, so it can never
be sent; it can still be written to a dead-letter line as a JSON escape.

Identifier policy (README, "Identifiers"):

- invisible format characters (Unicode category Cf: zero-width space and joiners, BOM,
  soft hyphen, bidi marks, word joiner) are removed: they are copy-paste artefacts that
  would otherwise create a second profile for the same person;
- control characters (category Cc, e.g. NUL or a newline inside an email) and lone
  surrogates make the identifier invalid (``invalid_identifier_policy`` applies).
"""

from __future__ import annotations

import re
import unicodedata

from target_insider_one.values import InvalidValueError

_SURROGATE = re.compile("[\ud800-\udfff]")
# Characters JSON allows raw in strings that line-based readers treat as line breaks
# (U+2028/2029 in JavaScript before ES2019; those and NEL U+0085 in Python's
# str.splitlines; json.dumps already escapes the C0 ones), plus lone surrogates, which
# UTF-8 cannot encode: all written as \uXXXX escapes, which JSON readers read back unchanged.
LINE_BREAKS = "\x85\u2028\u2029"
_LINE_BREAK = re.compile(f"[{LINE_BREAKS}]")
_UNSAFE_IN_LINE = re.compile(f"[{LINE_BREAKS}\ud800-\udfff]")


def has_surrogates(text: str) -> bool:
    """Whether a string holds lone UTF-16 surrogates (it cannot be encoded as UTF-8).

    Args:
        text: The string.

    Returns:
        True when UTF-8 cannot encode it.
    """
    return _SURROGATE.search(text) is not None


def check_unicode(value: object) -> None:
    """Reject a converted value (string, or list of scalars) that is not valid Unicode.

    Args:
        value: A converted attribute value.

    Raises:
        InvalidValueError: If a string in it holds a lone surrogate.
    """
    items = value if isinstance(value, list) else (value,)
    if any(isinstance(item, str) and has_surrogates(item) for item in items):
        raise InvalidValueError(
            "invalid_unicode",
            "text holds a lone UTF-16 surrogate or a non-UTF-8 byte (not valid Unicode)",
        )


def clean_identifier(text: str) -> str:
    """Apply the identifier text policy: drop invisible characters, reject the others.

    Args:
        text: The identifier as received.

    Returns:
        The text without format characters (Cf) and without surrounding whitespace.

    Raises:
        InvalidValueError: For lone surrogates or control characters.
    """
    if has_surrogates(text):
        raise InvalidValueError(
            "identifier_invalid_unicode",
            "identifier holds a lone UTF-16 surrogate or a non-UTF-8 byte",
        )
    if text.isascii() and text.isprintable():
        return text.strip()  # the common case: nothing to look at
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category == "Cf":
            continue
        if category == "Cc" and char not in " \t\r\n":
            raise InvalidValueError(
                "identifier_control_character", "identifier holds a control character"
            )
        kept.append(char)
    cleaned = "".join(kept).strip()
    if any(c in "\t\r\n" for c in cleaned):
        raise InvalidValueError(
            "identifier_control_character", "identifier holds a tab or line break"
        )
    return cleaned


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_line_breaks(text: str) -> str:
    """Escape the line-break characters JSON allows raw (see :func:`safe_json_line`).

    Args:
        text: Compact JSON text.

    Returns:
        The same JSON value without U+0085, U+2028 or U+2029.
    """
    return _LINE_BREAK.sub(_escape, text)


def safe_json_line(line: str) -> str:
    r"""Make a JSON text (from ``json.dumps(ensure_ascii=False)``) safe for a JSONL file.

    U+0085, U+2028, U+2029 and lone surrogates can only occur inside JSON strings there, so
    replacing each with its ``\\uXXXX`` escape keeps the same JSON value, and the line is
    valid UTF-8 with no character that a line-based reader splits on.

    Args:
        line: Compact JSON text.

    Returns:
        The same JSON value, UTF-8-encodable and free of line separators.
    """
    return _UNSAFE_IN_LINE.sub(_escape, line)
