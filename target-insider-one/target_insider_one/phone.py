r"""Phone number normalisation to the E.164 form Insider accepts.

Rules (documented in the README, "Phone numbers"):

1. ``None`` never reaches this module; empty strings are rejected (``phone_empty``).
2. With ``normalize`` off, the value must already match Insider's regex.
3. A leading ``tel:`` is removed. With ``rewrite_00_prefix`` on (default), a leading ``00``
   is rewritten to ``+``: ``phonenumbers`` only understands ``00`` when it is the default
   region's international prefix, which gives wrong numbers for e.g. Singapore or the US.
4. The number is parsed with ``phone_default_region``. A national number without a default
   region is rejected (``phone_needs_region``).
5. Extensions are rejected (``phone_has_extension``) unless ``extension_policy`` is ``drop``,
   because E.164 cannot carry them and dropping them silently merges different people.
6. Letters are rejected (``phone_has_letters``): vanity numbers are not converted.
7. The number is validated *before* formatting (``valid``: metadata ranges; ``possible``:
   length only), then formatted to E.164 and checked against ``^\+[1-9]\d{6,14}$``.

Error messages never contain the number itself, so they are safe to log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult
from typing_extensions import override

from target_insider_one.config_schema import PhoneExtensionPolicy, PhoneValidation, schema_default

# phonenumbers compiles its metadata's patterns on every use unless told to keep them; the
# re module's own cache (512 entries, shared with everything else in the process) then
# does the keeping, at a lookup per match: keeping them cut phonenumbers' time by 10-20%.
# (Bounded: the keys are the metadata's patterns. A release without the switch compiles
# as it always did.)
getattr(phonenumbers, "enable_pattern_cache", lambda: None)()

INSIDER_PHONE_RE = re.compile(r"^\+[1-9]\d{6,14}$")
_LEADING_00 = re.compile(r"^[\s().\-]*00")
_LETTERS = re.compile(r"[A-Za-z]")


class PhoneNumberError(ValueError):
    """A phone number that cannot be sent to Insider."""

    @override
    def __init__(self, reason: str, message: str) -> None:
        """Create the error.

        Args:
            reason: Short machine-readable reason code (``phone_*``).
            message: Human-readable explanation, without the number itself.
        """
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class PhoneOptions:
    """How phone numbers are normalised."""

    # Defaults (for code without a config, e.g. tests) are the config schema's.
    normalize: bool = schema_default("normalize_phone_numbers")
    default_region: str | None = None
    validation: str = schema_default("phone_validation")
    rewrite_00_prefix: bool = schema_default("phone_rewrite_00_prefix")
    extension_policy: str = schema_default("phone_extension_policy")


DEFAULT_PHONE_OPTIONS = PhoneOptions()

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "phone_invalid_country_code",
    NumberParseException.NOT_A_NUMBER: "phone_not_a_number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "phone_too_short",
    NumberParseException.TOO_SHORT_NSN: "phone_too_short",
    NumberParseException.TOO_LONG: "phone_too_long",
}

_POSSIBLE_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: ("phone_invalid_country_code", "unknown country code"),
    ValidationResult.TOO_SHORT: ("phone_too_short", "too short for its region"),
    ValidationResult.TOO_LONG: ("phone_too_long", "too long for its region"),
    ValidationResult.INVALID_LENGTH: ("phone_invalid_length", "invalid length for its region"),
}


def _text_of(raw: object) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise PhoneNumberError(
            "phone_not_string",
            f"phone number must be a string, got {type(raw).__name__}",
        )
    text = str(raw).strip()
    if not text:
        raise PhoneNumberError("phone_empty", "phone number is empty")
    return text


def to_e164(raw: object, options: PhoneOptions = DEFAULT_PHONE_OPTIONS) -> str:
    """Normalise a phone number to E.164 (``+`` and 7-15 digits).

    Args:
        raw: The source value (a string; integers are treated as digit strings).
        options: Normalisation options.

    Returns:
        The E.164 string.

    Raises:
        PhoneNumberError: If the value cannot be turned into a number Insider accepts.
    """
    text = _text_of(raw)
    if not options.normalize:
        if INSIDER_PHONE_RE.fullmatch(text):
            return text
        raise PhoneNumberError(
            "phone_not_e164",
            "phone number is not in E.164 form and normalize_phone_numbers is off",
        )
    if text[:4].lower() == "tel:":
        text = text[4:].strip()
    if options.rewrite_00_prefix and (match := _LEADING_00.match(text)):
        text = "+" + text[match.end() :]
    if not text.startswith("+") and not options.default_region:
        raise PhoneNumberError(
            "phone_needs_region",
            "national phone number (no '+' or '00' prefix) and no phone_default_region set",
        )
    try:
        number = phonenumbers.parse(text, options.default_region)
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, "phone_unparseable")
        raise PhoneNumberError(reason, f"phone number could not be parsed ({reason})") from None
    if number.extension:
        if options.extension_policy != PhoneExtensionPolicy.DROP:
            raise PhoneNumberError(
                "phone_has_extension",
                "phone number has an extension, which E.164 cannot carry",
            )
        number.extension = None
    elif _LETTERS.search(text):
        raise PhoneNumberError("phone_has_letters", "phone number contains letters")
    _check(number, options.validation)
    formatted = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if not INSIDER_PHONE_RE.fullmatch(formatted):
        raise PhoneNumberError(
            "phone_invalid_format", "phone number does not match Insider's E.164 pattern"
        )
    return formatted


def _check(number: phonenumbers.PhoneNumber, mode: str) -> None:
    # The common case (a valid number) needs one metadata check; reasons only on failure.
    if mode == PhoneValidation.VALID and phonenumbers.is_valid_number(number):
        return
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == ValidationResult.IS_POSSIBLE:
        if mode == PhoneValidation.VALID:
            raise PhoneNumberError(
                "phone_invalid", "phone number is not in any assigned range for its region"
            )
        return
    if possible == ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        raise PhoneNumberError("phone_too_short", "phone number is only dialable locally")
    reason, text = _POSSIBLE_REASONS.get(possible, ("phone_invalid", "not a possible phone number"))
    raise PhoneNumberError(reason, f"phone number is {text}")
