import pytest
from target_insider_one.settings import parse_settings
from target_insider_one.text import check_unicode, clean_identifier, safe_json_line
from target_insider_one.validation import validate_identifiers
from target_insider_one.values import InvalidValueError

from .conftest import DEMO_MAPPING


@pytest.mark.parametrize(
    "invisible",
    ["\u200b", "\u200c", "\u200d", "\ufeff", "\u00ad", "\u200e", "\u200f", "\u202e", "\u2060"],
)
def test_invisible_characters_are_removed_from_identifiers(invisible):
    assert clean_identifier(f" {invisible}ada{invisible}@example.com{invisible} ") == (
        "ada@example.com"
    )


@pytest.mark.parametrize("bad", ["a\x00b", "a\nb@example.com", "a\tb", "K\ud800", "\udcff"])
def test_control_characters_and_surrogates_make_an_identifier_invalid(bad):
    with pytest.raises(InvalidValueError):
        clean_identifier(bad)


def test_an_email_with_a_zero_width_space_is_sent_clean_not_as_is():
    settings = parse_settings({"partner_name": "p", "api_key": "k", **DEMO_MAPPING})
    record = {"SubscriberKey": "K\u200d1", "EmailAddress": "Zoe\u200b@Example.com"}
    outcome = validate_identifiers(record, settings)
    assert outcome.identifiers == {"uuid": "K1", "email": "zoe@example.com"}


def test_email_with_a_nul_is_an_invalid_identifier():
    settings = parse_settings({"partner_name": "p", "api_key": "k", **DEMO_MAPPING})
    outcome = validate_identifiers({"SubscriberKey": "K", "EmailAddress": "a\x00@b.co"}, settings)
    assert outcome.identifiers == {"uuid": "K"}
    assert [i.reason for i in outcome.issues] == ["identifier_control_character"]


def test_check_unicode_rejects_lone_surrogates_in_strings_and_arrays():
    check_unicode("fine \u2028 text")
    check_unicode(["a", 1, True])
    for value in ("x\ud800", ["ok", "\udcff"]):
        with pytest.raises(InvalidValueError, match="surrogate"):
            check_unicode(value)


def test_safe_json_line_escapes_line_breaks_and_surrogates_only():
    line = safe_json_line('{"a":"x\u2028y\u2029z\x85\ud800 é"}')
    assert line == '{"a":"x\\u2028y\\u2029z\\u0085\\ud800 é"}'
    line.encode("utf-8")
