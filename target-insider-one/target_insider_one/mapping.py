"""Record -> Insider user payload: identifiers, mapped attributes and fixed values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from target_insider_one.config_schema import EmptyStringPolicy, InvalidAttributePolicy
from target_insider_one.conversion_steps import OMIT, compile_step
from target_insider_one.phone import PhoneNumberError, to_e164
from target_insider_one.settlement import DeadLetterReason
from target_insider_one.text import check_unicode
from target_insider_one.validation import IdentifierCheck, Issue
from target_insider_one.values import (
    InvalidValueError,
    converter_for_kind,
    schema_kind,
    to_birthday,
    to_bool,
    to_country,
    to_email,
    to_int_array,
    to_integer,
    to_language,
    to_number,
    to_string,
    to_utc_datetime,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from target_insider_one.phone import PhoneOptions
    from target_insider_one.settings import AttributeTarget, Settings

_BOOLEAN_DEFAULTS = ("email_optin", "sms_optin", "whatsapp_optin", "gdpr_optin")


@dataclass
class MappedRecord:
    """Outcome of mapping one record."""

    user: dict[str, Any] | None
    skip_reason: str | None = None
    skip_message: str | None = None
    issues: list[Issue] = field(default_factory=list)


class UserMapper:
    """Maps records of one stream (one schema) to Insider user objects."""

    def __init__(
        self,
        settings: Settings,
        schema: Mapping[str, Any],
        to_phone: Callable[[object, PhoneOptions], str] = to_e164,
    ) -> None:
        """Precompute a converter per mapped attribute.

        Args:
            settings: Target settings.
            schema: The stream's JSON schema (after stream maps / flattening).
            to_phone: :func:`~target_insider_one.phone.to_e164`, or a function with the same
                results (:class:`~target_insider_one.phone_pool.PhonePrefetch`).
        """
        self.settings = settings
        self._to_phone = to_phone
        self._identifiers = IdentifierCheck(settings, to_phone)
        properties = schema.get("properties") or {}
        self._attributes: list[tuple[str, AttributeTarget, Callable[[object], Any]]] = [
            (source, target, self._converter(target, properties.get(source)))
            for source, target in settings.attributes
        ]
        omit = settings.empty_string_policy == EmptyStringPolicy.OMIT
        self._steps = [
            (source, target.name, target.custom, target.label, compile_step(convert, omit=omit))
            for source, target, convert in self._attributes
        ]
        self._fixed: dict[str, Any] = {}
        self._fixed_custom: dict[str, Any] = {}
        for target, value in settings.fixed_values:
            converted = self._converter(target, None)(value)
            check_unicode(converted)
            (self._fixed_custom if target.custom else self._fixed)[target.name] = converted

    def _converter(
        self, target: AttributeTarget, prop: Mapping[str, Any] | None
    ) -> Callable[[object], Any]:
        kind = schema_kind(prop)
        if target.custom:
            return converter_for_kind(kind)
        defaults: dict[str, Callable[[object], Any]] = {
            "birthday": to_birthday,
            "age": to_integer if kind == "integer" else to_number,
            "static_segment_id": to_int_array,
            "language": to_language,
            "country": to_country,
            "email": self._email_attribute,
            "phone_number": self._phone_attribute,
            **dict.fromkeys(_BOOLEAN_DEFAULTS, to_bool),
        }
        if target.name in defaults:
            return defaults[target.name]
        return to_utc_datetime if kind in {"date-time", "date"} else to_string

    def _email_attribute(self, value: object) -> str:
        return to_email(value, normalize=self.settings.normalize_emails)

    def _phone_attribute(self, value: object) -> str:
        try:
            return self._to_phone(value, self.settings.phone)
        except PhoneNumberError as exc:
            raise InvalidValueError(exc.reason, exc.message) from None

    def _convert_attributes(
        self, record: Mapping[str, Any], issues: list[Issue]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Convert the mapped attributes of a record (fixed values included).

        Each attribute has its compiled step (:mod:`target_insider_one.conversion_steps`);
        ``None`` is skipped without a call.

        Args:
            record: The source record.
            issues: Where values that cannot be converted are reported.

        Returns:
            The default attributes and the custom ones.
        """
        attributes: dict[str, Any] = dict(self._fixed)
        custom: dict[str, Any] = dict(self._fixed_custom)
        get = record.get
        for source, name, into_custom, label, step in self._steps:
            value = get(source)
            if value is None:
                continue
            try:
                converted = step(value)
            except (InvalidValueError, ValueError, TypeError, OverflowError) as exc:
                reason = getattr(exc, "reason", "invalid_value")
                message = getattr(exc, "message", "value could not be converted")
                issues.append(Issue(label, source, reason, message))
                continue
            if converted is not OMIT:
                (custom if into_custom else attributes)[name] = converted
        return attributes, custom

    def map_record(self, record: Mapping[str, Any]) -> MappedRecord:
        """Build the user object for a record, or say why it is skipped.

        Args:
            record: The source record.

        Returns:
            The mapped record.
        """
        settings = self.settings
        outcome = self._identifiers(record)
        if outcome.skip_reason:
            return MappedRecord(None, outcome.skip_reason, outcome.skip_message, outcome.issues)
        issues = outcome.issues
        attributes, custom = self._convert_attributes(record, issues)
        attribute_issues = [i for i in issues if i.kind == "attribute"]
        if (
            attribute_issues
            and settings.invalid_attribute_policy == InvalidAttributePolicy.SKIP_RECORD
        ):
            return MappedRecord(
                None,
                DeadLetterReason.INVALID_ATTRIBUTE,
                "; ".join(f"{i.target} ({i.field}): {i.message}" for i in attribute_issues),
                issues,
            )
        if custom:
            attributes["custom"] = custom
        if not attributes:
            return MappedRecord(
                None,
                DeadLetterReason.NO_ATTRIBUTES,
                "no attribute has a value; Insider rejects users without attributes",
                issues,
            )
        user: dict[str, Any] = {"identifiers": outcome.identifiers, "attributes": attributes}
        if settings.not_append:
            user["not_append"] = True
        return MappedRecord(user, issues=issues)
