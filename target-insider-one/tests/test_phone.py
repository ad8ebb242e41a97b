import pytest
from target_insider_one.phone import INSIDER_PHONE_RE, PhoneNumberError, PhoneOptions, to_e164

GB = PhoneOptions(default_region="GB")
NO_REGION = PhoneOptions()


@pytest.mark.parametrize(
    ("raw", "options", "expected"),
    [
        ("+44 20 7946 0958", NO_REGION, "+442079460958"),
        ("020 7946 0958", GB, "+442079460958"),
        ("(020) 7946-0958", GB, "+442079460958"),
        ("tel:+44-20-7946-0958", NO_REGION, "+442079460958"),
        ("+6598765432", NO_REGION, "+6598765432"),
        # 00 is rewritten to + regardless of the default region's real IDD.
        ("00 44 20 7946 0958", NO_REGION, "+442079460958"),
        ("0065 9876 5432", PhoneOptions(default_region="SG"), "+6598765432"),
        ("0044 20 7946 0958", PhoneOptions(default_region="US"), "+442079460958"),
        ("+49 (0)30 123456", NO_REGION, "+4930123456"),
        ("+1 202-555-0143", NO_REGION, "+12025550143"),
        (6598765432, PhoneOptions(default_region="SG"), "+6598765432"),
        (
            "\uff12\uff10\uff12\uff15\uff15\uff15\uff10\uff11\uff14\uff13",
            PhoneOptions(default_region="US"),
            "+12025550143",
        ),
    ],
)
def test_normalises(raw, options, expected):
    assert to_e164(raw, options) == expected
    assert INSIDER_PHONE_RE.fullmatch(expected)


@pytest.mark.parametrize(
    ("raw", "options", "reason"),
    [
        ("020 7946 0958", NO_REGION, "phone_needs_region"),
        ("98765432", PhoneOptions(default_region="US"), "phone_too_short"),
        ("12345", PhoneOptions(default_region="US"), "phone_too_short"),
        ("+1 555 555 5555", NO_REGION, "phone_invalid"),
        ("020 7946 0958", PhoneOptions(default_region="US"), "phone_too_long"),
        ("+1 202-555-0143 x123", NO_REGION, "phone_has_extension"),
        ("202-555-0143 ext. 123", PhoneOptions(default_region="US"), "phone_has_extension"),
        ("1-800-FLOWERS", PhoneOptions(default_region="US"), "phone_has_letters"),
        ("call me", GB, "phone_not_a_number"),
        ("abc", GB, "phone_not_a_number"),
        ("", GB, "phone_empty"),
        ("   ", GB, "phone_empty"),
        ("+9999999999", NO_REGION, "phone_invalid_country_code"),
        ("+44 20 7946 0958 1234 5678 99", NO_REGION, "phone_too_long"),
        (True, GB, "phone_not_string"),
        (12.5, GB, "phone_not_string"),
        ({"n": 1}, GB, "phone_not_string"),
    ],
)
def test_rejects(raw, options, reason):
    with pytest.raises(PhoneNumberError) as info:
        to_e164(raw, options)
    assert info.value.reason == reason
    # Messages are logged, so they never contain the number.
    if isinstance(raw, str) and raw.strip():
        assert raw not in info.value.message


def test_00_rewrite_can_be_disabled():
    # phonenumbers alone reads 00 as the default region's IDD: right for DE, wrong for US.
    options = PhoneOptions(default_region="DE", rewrite_00_prefix=False)
    assert to_e164("00 44 20 7946 0958", options) == "+442079460958"
    with pytest.raises(PhoneNumberError):
        to_e164("00 44 20 7946 0958", PhoneOptions(default_region="US", rewrite_00_prefix=False))


def test_extension_drop_policy():
    options = PhoneOptions(extension_policy="drop")
    assert to_e164("+1 202-555-0143 x123", options) == "+12025550143"


def test_possible_mode_accepts_unassigned_ranges():
    assert to_e164("+1 555 555 5555", PhoneOptions(validation="possible")) == "+15555555555"
    with pytest.raises(PhoneNumberError):
        to_e164("+1 555", PhoneOptions(validation="possible"))


def test_normalisation_off_requires_e164():
    options = PhoneOptions(normalize=False)
    assert to_e164(" +6598765432 ", options) == "+6598765432"
    with pytest.raises(PhoneNumberError) as info:
        to_e164("020 7946 0958", options)
    assert info.value.reason == "phone_not_e164"


def test_phonenumbers_keeps_its_compiled_patterns():
    # Without it, phonenumbers calls re.compile on every match (10-20% of its time).
    from phonenumbers import re_util

    to_e164("020 7200 0000", PhoneOptions(default_region="GB"))
    assert re_util._COMPILED_PATTERNS  # filled by the call above
