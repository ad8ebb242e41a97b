"""Identifier validation and the invalid-identifier policy.

Identifier text is cleaned first (:func:`target_insider_one.text.clean_identifier`):
invisible format characters are removed; control characters and lone surrogates make
the identifier invalid.

An identifier is *absent* when its source field is missing, ``None`` or (under
``empty_string_policy: omit``) blank. It is *invalid* when a value is present but unusable:
a bad email, a phone number that does not normalise, a uuid that is neither a string nor an
integer, or a placeholder such as ``undefined`` (``blocked_identifier_values``).

Policies for invalid identifiers:

- ``skip_identifier`` (default): drop the invalid identifier; keep the record if at least one
  valid identifier remains.
- ``skip_record``: any invalid identifier skips the whole record.

A record left with no valid identifier is skipped with reason ``no_identifier`` (nothing was
present) or ``no_valid_identifier`` (something was present but invalid). Skipped records are
dead-lettered by the sink.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from target_insider_one.config_schema import EmptyStringPolicy, InvalidIdentifierPolicy
from target_insider_one.phone import PhoneNumberError, to_e164
from target_insider_one.settlement import DeadLetterReason
from target_insider_one.text import clean_identifier
from target_insider_one.values import EMAIL_PATTERN, InvalidValueError, is_empty, to_email

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from target_insider_one.phone import PhoneOptions
    from target_insider_one.settings import IdentifierMapping, Settings


@dataclass
class Issue:
    """A problem with one identifier or attribute of a record."""

    target: str
    field: str
    reason: str
    message: str
    kind: str = "attribute"

    def as_dict(self) -> dict[str, str]:
        """Plain-dict form for dead letters.

        Returns:
            The issue as a dict.
        """
        return {
            "target": self.target,
            "field": self.field,
            "reason": self.reason,
            "message": self.message,
            "kind": self.kind,
        }


@dataclass
class IdentifierOutcome:
    """Result of validating a record's identifiers."""

    identifiers: dict[str, Any] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    skip_reason: str | None = None
    skip_message: str | None = None


def _identifier_value(
    mapping: IdentifierMapping,
    value: object,
    settings: Settings,
    to_phone: Callable[[object, PhoneOptions], str],
) -> str:
    if isinstance(value, str):
        value = clean_identifier(value)
    if mapping.type == "email":
        return to_email(value, normalize=settings.normalize_emails)
    if mapping.type == "phone_number":
        try:
            return to_phone(value, settings.phone)
        except PhoneNumberError as exc:
            raise InvalidValueError(exc.reason, exc.message) from None
    # uuid and custom identifiers must be strings; integers have one obvious string form.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidValueError(
            f"{mapping.type}_not_string",
            f"{mapping.label} must be a string (or an integer), got {type(value).__name__}",
        )
    text = str(value).strip()
    if not text:
        raise InvalidValueError(f"{mapping.type}_empty", f"{mapping.label} is blank")
    return text


def validate_identifiers(
    record: Mapping[str, Any],
    settings: Settings,
    to_phone: Callable[[object, PhoneOptions], str] = to_e164,
) -> IdentifierOutcome:
    """Validate and normalise every configured identifier of a record.

    Args:
        record: The source record.
        settings: Target settings.
        to_phone: :func:`~target_insider_one.phone.to_e164`, or a function with the same
            results (:class:`~target_insider_one.phone_pool.PhonePrefetch`).

    Returns:
        The identifiers to send, the issues found and, if the record must be skipped,
        the reason.
    """
    outcome = IdentifierOutcome()
    present = 0
    custom: dict[str, str] = {}
    for mapping in settings.identifiers:
        value = record.get(mapping.field)
        if is_empty(value, settings.empty_string_policy):
            continue
        present += 1
        try:
            normalised = _identifier_value(mapping, value, settings, to_phone)
            if normalised.lower() in settings.blocked_identifier_values:
                raise _blocked(mapping)
        except InvalidValueError as exc:
            outcome.issues.append(
                Issue(mapping.label, mapping.field, exc.reason, exc.message, "identifier")
            )
            continue
        if mapping.type == "custom":
            custom[str(mapping.name)] = normalised
        else:
            outcome.identifiers[mapping.type] = normalised
    if custom:
        outcome.identifiers["custom"] = custom
    _decide_skip(outcome, present, settings)
    return outcome


class IdentifierCheck:
    """:func:`validate_identifiers` compiled for one configuration (the per-record path).

    Each identifier gets one step that knows its type, the normalisation and the blocked
    values; text that is ASCII and printable (what taps write) takes a shortcut, anything
    else the reference :func:`_identifier_value`. ``test_fast_paths`` checks the outcome
    equals :func:`validate_identifiers`'.
    """

    def __init__(
        self, settings: Settings, to_phone: Callable[[object, PhoneOptions], str] = to_e164
    ) -> None:
        """Build a step per identifier.

        Args:
            settings: Target settings.
            to_phone: As for :func:`validate_identifiers`.
        """
        self.settings = settings
        self._omit = settings.empty_string_policy == EmptyStringPolicy.OMIT
        self._steps = [
            (
                m.field,
                m.type == "custom",
                str(m.name) if m.type == "custom" else m.type,
                m,
                self._step(m, to_phone),
            )
            for m in settings.identifiers
        ]

    def _step(
        self, mapping: IdentifierMapping, to_phone: Callable[[object, PhoneOptions], str]
    ) -> Callable[[object], str]:
        settings = self.settings
        blocked = settings.blocked_identifier_values

        def reference(value: object) -> str:
            normalised = _identifier_value(mapping, value, settings, to_phone)
            if normalised.lower() in blocked:
                raise _blocked(mapping)
            return normalised

        if mapping.type == "phone_number":
            return reference
        if mapping.type == "email":
            normalize = settings.normalize_emails
            email_re = EMAIL_PATTERN

            def email(value: object) -> str:
                # clean_identifier is strip() for printable ASCII; to_email strips again.
                if type(value) is str and value.isascii() and value.isprintable():
                    text = value.strip().lower() if normalize else value.strip()
                    if email_re.fullmatch(text) and text.lower() not in blocked:
                        return text
                return reference(value)

            return email

        def text_identifier(value: object) -> str:
            if type(value) is str and value.isascii() and value.isprintable():
                text = value.strip()
                if text and text.lower() not in blocked:
                    return text
            return reference(value)

        return text_identifier

    def __call__(self, record: Mapping[str, Any]) -> IdentifierOutcome:
        """Validate and normalise every configured identifier of a record.

        Args:
            record: The source record.

        Returns:
            As :func:`validate_identifiers`.
        """
        identifiers: dict[str, Any] = {}
        issues: list[Issue] = []
        custom: dict[str, str] = {}
        present = 0
        omit = self._omit
        get = record.get
        for source, is_custom, slot, mapping, step in self._steps:
            value = get(source)
            if value is None:
                continue
            if type(value) is str:
                if omit and (not value or value.isspace()):  # what strip() removes
                    continue
            elif is_empty(value, self.settings.empty_string_policy):
                continue
            present += 1
            try:
                normalised = step(value)
            except InvalidValueError as exc:
                issues.append(Issue(mapping.label, source, exc.reason, exc.message, "identifier"))
                continue
            (custom if is_custom else identifiers)[slot] = normalised
        if custom:
            identifiers["custom"] = custom
        outcome = IdentifierOutcome(identifiers, issues)
        if issues or not identifiers:
            _decide_skip(outcome, present, self.settings)
        return outcome


def _blocked(mapping: IdentifierMapping) -> InvalidValueError:
    return InvalidValueError(
        "blocked_value",
        f"{mapping.label} is a placeholder value listed in blocked_identifier_values",
    )


def _decide_skip(outcome: IdentifierOutcome, present: int, settings: Settings) -> None:
    """Set why the record is skipped, if it must be (the policy, or nothing valid left)."""
    if outcome.issues and settings.invalid_identifier_policy == InvalidIdentifierPolicy.SKIP_RECORD:
        outcome.skip_reason = DeadLetterReason.INVALID_IDENTIFIER
        outcome.skip_message = "; ".join(
            f"{i.target} ({i.field}): {i.message}" for i in outcome.issues
        )
        outcome.identifiers = {}
    elif not outcome.identifiers:
        if present:
            outcome.skip_reason = DeadLetterReason.NO_VALID_IDENTIFIER
            outcome.skip_message = "no valid identifier: " + "; ".join(
                f"{i.target} ({i.field}): {i.message}" for i in outcome.issues
            )
        else:
            fields = ", ".join(m.field for m in settings.identifiers)
            outcome.skip_reason = DeadLetterReason.NO_IDENTIFIER
            outcome.skip_message = f"none of the identifier fields has a value ({fields})"
