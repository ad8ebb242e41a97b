"""The target's config schema: every setting's default, bounds and allowed values, once.

``--about``, ``meltano.yml`` (scripts/about_to_meltano.py) and the README's settings table
are generated from this schema, and :func:`target_insider_one.settings.parse_settings`
reads the values it validated: to change a default or a bound, change it here only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from singer_sdk import typing as th

DEFAULT_API_BASE_URL = "https://unification.useinsider.com"
# Insider's limits per upsert request: they bound batch_size_rows and max_request_bytes.
MAX_USERS_PER_REQUEST = 1000
MAX_REQUEST_BYTES = 5_000_000


class IdentifierType(StrEnum):
    """Insider identifier types (``custom`` needs a name)."""

    EMAIL = "email"
    PHONE_NUMBER = "phone_number"
    UUID = "uuid"
    CUSTOM = "custom"


class InvalidIdentifierPolicy(StrEnum):
    """What an invalid identifier value does to its record."""

    SKIP_IDENTIFIER = "skip_identifier"
    SKIP_RECORD = "skip_record"


class InvalidAttributePolicy(StrEnum):
    """What an unconvertible attribute value does to its record."""

    SKIP_ATTRIBUTE = "skip_attribute"
    SKIP_RECORD = "skip_record"


class EmptyStringPolicy(StrEnum):
    """Whether blank strings are sent."""

    OMIT = "omit"
    SEND = "send"


class PhoneValidation(StrEnum):
    """How strictly phone numbers are checked."""

    VALID = "valid"
    POSSIBLE = "possible"


class PhoneExtensionPolicy(StrEnum):
    """What a phone number with an extension does."""

    REJECT = "reject"
    DROP = "drop"


def _values(choices: type[StrEnum]) -> list[str]:
    return [choice.value for choice in choices]


_IDENTIFIER = th.ObjectType(
    th.Property(
        "type",
        th.StringType,
        required=True,
        allowed_values=_values(IdentifierType),
        description="Insider identifier type.",
    ),
    th.Property("field", th.StringType, required=True, description="Source record field."),
    th.Property(
        "name",
        th.StringType,
        description="Custom identifier name as configured in Insider IRM (type 'custom' only).",
    ),
    additional_properties=False,
)

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "partner_name",
        th.StringType,
        required=True,
        title="Partner Name",
        description="Insider One partner (account) name, sent as X-PARTNER-NAME. It is "
        "lowercased before sending, as Insider requires.",
    ),
    th.Property(
        "api_key",
        th.StringType,
        required=True,
        secret=True,
        title="API Key",
        description="Insider One API key of type 'Unified Customer Database (UCD)', sent as "
        "X-REQUEST-TOKEN.",
    ),
    th.Property(
        "api_base_url",
        th.StringType,
        default=DEFAULT_API_BASE_URL,
        title="API Base URL",
        description="Base URL of the Insider unification API. Must be https; plain http is "
        "accepted only for loopback hosts (localhost, 127.0.0.0/8, ::1), e.g. an emulator.",
    ),
    th.Property(
        "identifier_mappings",
        th.ArrayType(_IDENTIFIER),
        required=True,
        title="Identifier Mappings",
        description="At least one {type, field[, name]}: type is email, phone_number, uuid or "
        "custom (custom needs name). Example: "
        '[{"type": "uuid", "field": "SubscriberKey"}, '
        '{"type": "email", "field": "EmailAddress"}].',
    ),
    th.Property(
        "attribute_mappings",
        th.ObjectType(additional_properties=th.StringType),
        title="Attribute Mappings",
        description="Source field -> Insider attribute. Insider default attributes (name, "
        "surname, email, phone_number, uuid, email_optin, sms_optin, whatsapp_optin, "
        "gdpr_optin, birthday, gender, age, language, country, city, locale, lo, "
        "static_segment_id) go at the root of `attributes`; any other name (or a name "
        "prefixed `custom.`) goes under `attributes.custom`.",
    ),
    th.Property(
        "fixed_value_mappings",
        th.ObjectType(),
        title="Fixed Value Mappings",
        description='Attribute -> constant set on every user, e.g. {"data_source": "sfmc"}. '
        "Same placement rules as attribute_mappings.",
    ),
    th.Property(
        "skip_hook",
        th.BooleanType,
        default=False,
        description="Send top-level skip_hook=true so the import does not trigger Insider "
        "data streams or Architect 'On Event' journeys (use for historical loads).",
    ),
    th.Property(
        "fast_fail",
        th.BooleanType,
        default=False,
        description="Stop the run at once (exit 3, no further STATE) at the first request "
        "that is not delivered after its retries (exit 1 for one Insider refused). When false, "
        "the other batches are still delivered, then the run exits 3 without STATE past the "
        "undelivered records, so the next run re-sends them. Undelivered records are never "
        "dead-lettered.",
    ),
    th.Property(
        "not_append",
        th.BooleanType,
        default=True,
        description="Send not_append=true (per user and at the top level) so array attributes are "
        "overwritten, not appended: replays are idempotent. Set false to append.",
    ),
    th.Property(
        "invalid_identifier_policy",
        th.StringType,
        default=InvalidIdentifierPolicy.SKIP_IDENTIFIER.value,
        allowed_values=_values(InvalidIdentifierPolicy),
        description="For an invalid identifier value: skip_identifier drops it and keeps the "
        "record if another valid identifier remains; skip_record dead-letters the record.",
    ),
    th.Property(
        "invalid_attribute_policy",
        th.StringType,
        default=InvalidAttributePolicy.SKIP_ATTRIBUTE.value,
        allowed_values=_values(InvalidAttributePolicy),
        description="For an attribute value that cannot be converted (e.g. 'maybe' for a "
        "boolean): skip_attribute omits it (counted in the summary); skip_record "
        "dead-letters the record.",
    ),
    th.Property(
        "empty_string_policy",
        th.StringType,
        default=EmptyStringPolicy.OMIT.value,
        allowed_values=_values(EmptyStringPolicy),
        description="omit: blank strings (and empty arrays) are treated like null and never "
        "sent; send: blank strings are sent to string attributes as-is. Nulls are never sent.",
    ),
    th.Property(
        "normalize_emails",
        th.BooleanType,
        default=True,
        description="Trim and lowercase email identifiers and the email attribute.",
    ),
    th.Property(
        "blocked_identifier_values",
        th.ArrayType(th.StringType),
        default=["undefined", "null", "none", "nil", "anonymous", "n/a"],
        description="Identifier values treated as invalid (case-insensitive) to avoid wrong "
        "profile merges, as Insider's IRM guide recommends.",
    ),
    th.Property(
        "normalize_phone_numbers",
        th.BooleanType,
        default=True,
        description="Normalise phone numbers to E.164 with the phonenumbers library. When "
        "false, values must already match ^\\+[1-9]\\d{6,14}$.",
    ),
    th.Property(
        "phone_default_region",
        th.StringType,
        description="ISO 3166-1 alpha-2 region used to read national numbers (e.g. GB). "
        "Without it, only numbers starting with + (or 00) are accepted.",
    ),
    th.Property(
        "phone_validation",
        th.StringType,
        default=PhoneValidation.VALID.value,
        allowed_values=_values(PhoneValidation),
        description="valid: the number must be in an assigned range (phonenumbers metadata); "
        "possible: only its length is checked.",
    ),
    th.Property(
        "phone_rewrite_00_prefix",
        th.BooleanType,
        default=True,
        description="Rewrite a leading 00 to + before parsing (00 is the international prefix "
        "in most of the world; phonenumbers only honours it for the default region).",
    ),
    th.Property(
        "phone_extension_policy",
        th.StringType,
        default=PhoneExtensionPolicy.REJECT.value,
        allowed_values=_values(PhoneExtensionPolicy),
        description="reject: a number with an extension is invalid (E.164 cannot carry it); "
        "drop: send the number without its extension.",
    ),
    th.Property(
        "batch_size_rows",
        th.IntegerType(minimum=1, maximum=MAX_USERS_PER_REQUEST),
        default=MAX_USERS_PER_REQUEST,
        title="Batch Size (users per request)",
        description="Maximum users per upsert request (Insider's limit is 1000).",
    ),
    th.Property(
        "max_request_bytes",
        th.IntegerType(minimum=1_000, maximum=MAX_REQUEST_BYTES),
        default=MAX_REQUEST_BYTES,
        description="Maximum request body size in bytes (Insider's limit is 5,000,000); "
        "larger batches are split.",
    ),
    th.Property(
        "max_concurrent_requests",
        th.IntegerType(minimum=1, maximum=16),
        default=4,
        description="Upsert requests in flight at once (the target buffers "
        "batch_size_rows x this many records per drain).",
    ),
    th.Property(
        "request_timeout",
        th.NumberType(minimum=0.1, maximum=3600),
        default=60,
        description="Seconds to wait for each HTTP request (connect and read).",
    ),
    th.Property(
        "max_retries",
        th.IntegerType(minimum=0, maximum=100),
        default=20,
        description="Retries after the first attempt for 429, 5xx, 403 'Request Limit "
        "Exceeded', timeouts, dropped connections and DNS failures (retry_budget_seconds "
        "also limits them).",
    ),
    th.Property(
        "retry_budget_seconds",
        th.NumberType(minimum=0, maximum=3600),
        default=300,
        description="Time budget per request: no retry starts later than this many seconds "
        "after the first attempt (sized for a 429 storm or a short outage). A request still "
        "failing then is not delivered: the run exits 3 and the next run re-sends it.",
    ),
    th.Property(
        "backoff_base_seconds",
        th.NumberType(minimum=0, maximum=600),
        default=1,
        description="First retry delay; doubles on each retry, with jitter. A Retry-After "
        "header (up to 300 s) is honoured as a minimum.",
    ),
    th.Property(
        "backoff_max_seconds",
        th.NumberType(minimum=0, maximum=3600),
        default=60,
        description="Longest exponential backoff delay.",
    ),
    th.Property(
        "max_dead_letters",
        th.IntegerType(minimum=0),
        description="Alert: exit 4 when more than this many records were dead-lettered "
        "(delivery and STATE are unchanged). Off by default.",
    ),
    th.Property(
        "max_dead_letter_percent",
        th.NumberType(minimum=0, maximum=100),
        description="Alert: exit 4 when more than this percentage (0-100) of the records "
        "received was dead-lettered. Off by default.",
    ),
    th.Property(
        "dry_run",
        th.BooleanType,
        default=False,
        description="Validate and write the request bodies that would be sent to dry_run_path "
        "(one JSON body per line); send nothing and emit no STATE.",
    ),
    th.Property(
        "preflight",
        th.BooleanType,
        default=True,
        description="Before reading any input, check partner_name, api_key and api_base_url "
        "with one read-only request (metadata/columns), and warn about mapped custom "
        "attributes Insider does not define. Runs in dry runs too; set false to skip "
        "(e.g. an offline dry run).",
    ),
    th.Property(
        "dry_run_path",
        th.StringType,
        description="Dry-run output file. Default: output/dry-run/insider-<UTC timestamp>.jsonl.",
    ),
    th.Property(
        "dead_letter_path",
        th.StringType,
        description="JSONL file for records that were skipped or rejected (appended). "
        "Default: output/dead-letters/insider-<UTC timestamp>.jsonl.",
    ),
).to_dict()


def schema_default(name: str) -> Any:
    """The schema's default of one setting (for code that runs without a config).

    Args:
        name: Setting name.

    Returns:
        Its default (None when it has none).
    """
    return CONFIG_SCHEMA["properties"][name].get("default")
