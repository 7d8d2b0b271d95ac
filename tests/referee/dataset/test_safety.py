"""dataset_content_safety_scan_v1: personal data and secrets, confirmed by checksum, never repeated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from defendable_referee.dataset.pii import (
    card_ok,
    iban_ok,
    luhn_ok,
    phone_ok,
    redact_card,
    redact_email,
    redact_iban,
    redact_secret,
    ssn_ok,
)

from .kit import SAFETY, Bundle, clean_rows, messages, of

# Real-format values: test card numbers the networks publish, IBANs from the ISO 13616 / SWIFT
# registry examples, the SSA's rules, AWS's documented example key id.
PLANTED = {
    "email": ["jane.doe@example.com", "r.smith+news@mail.example.org"],
    "phone": ["(415) 555-2671", "+44 20 7946 0958"],
    "payment_card": ["4111 1111 1111 1111", "5555-5555-5555-4444"],
    "us_ssn": ["123-45-6789"],
    "iban": ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"],
    "secret": ["AKIAIOSFODNN7EXAMPLE", "ghp_" + "a1B2c3D4e5" * 3 + "F6g7H8"],
}
LOOKALIKES = [
    "4111 1111 1111 1112",  # fails Luhn
    "666-12-3456",  # SSN area 666 is never issued
    "123-00-4567",  # SSN group 00
    "GB82 WEST 1234 5698 7654 33",  # IBAN check digits wrong
    "555-123-4567",  # 555-1xxx are not valid NANP numbers
    "order 2024-01-15 shipped",  # a date
]


def planted(tmp_path: Path) -> Bundle:
    rows = clean_rows(40)
    values = [v for vs in PLANTED.values() for v in vs]
    for i, value in enumerate(values):
        rows[2 + 2 * i]["text"] = f"please contact {value} today"
    for i, value in enumerate(LOOKALIKES):
        rows[1 + 2 * i]["text"] = f"reference {value} here"
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", rows)
    return bundle


def test_every_detector_counts_confirmed_matches_only(tmp_path: Path) -> None:
    findings, verdict = planted(tmp_path).check(SAFETY)
    by_type = {f.message.split(":")[0]: f for f in of(findings, "dataset.content_safety_scan")}
    assert by_type["email addresses"].observed == "2"
    assert by_type["phone numbers"].observed == "2"
    assert by_type["payment card numbers"].observed == "2"
    assert by_type["US social security numbers"].observed == "1"
    assert by_type["IBANs"].observed == "2"
    assert by_type["API keys and secrets"].observed == "2"
    assert all(f.status == "flag" and f.tier == "high" for f in by_type.values())
    assert "**** **** **** 1111 (train.csv row 11)" in by_type["payment card numbers"].message
    assert "j***@e***.com (train.csv row 3)" in by_type["email addresses"].message
    assert verdict.severity == "propolis"


def test_no_finding_repeats_the_personal_data_it_found(tmp_path: Path) -> None:
    findings, verdict = planted(tmp_path).check(SAFETY)
    everything = " ".join(" ".join(filter(None, (f.message, f.observed, f.expected))) for f in findings) + " ".join(
        flag.message for flag in verdict.flags
    )
    digits_only = re.sub(r"\D", "", everything)
    for values in PLANTED.values():
        for value in values:
            assert value not in everything
            compact = value.replace(" ", "").replace("-", "")
            assert compact not in everything.replace(" ", "").replace("-", "")
            if sum(ch.isdigit() for ch in value) >= 9:
                assert re.sub(r"\D", "", value) not in digits_only
    assert "jane.doe" not in everything and "r.smith" not in everything


def test_a_clean_dataset_with_lookalikes_only_passes(tmp_path: Path) -> None:
    rows = clean_rows(20)
    for i, value in enumerate(LOOKALIKES):
        rows[i]["text"] = f"reference {value} here"
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", rows)
    findings, verdict = bundle.check(SAFETY)
    assert verdict.severity == "honey", messages(findings)


def test_undeclared_columns_are_scanned_too(tmp_path: Path) -> None:
    rows = [{**r, "contact": "jane.doe@example.com" if r["id"] == 3 else ""} for r in clean_rows(10)]
    bundle = Bundle(tmp_path)
    bundle.add_csv("train.csv", rows)
    manifest = bundle.manifest()
    manifest["schema"]["additional_columns"] = True
    findings, _ = bundle.check(SAFETY, manifest)
    [email] = [f for f in findings if f.message.startswith("email")]
    assert email.observed == "1" and "train.csv row 4" in email.message


def test_claimed_pii_counts_are_re_derived(tmp_path: Path) -> None:
    bundle = planted(tmp_path)
    bundle.extra["statistics"] = {"pii_counts": {"email": 2, "phone": 0}}
    findings, _ = bundle.check(SAFETY)
    [claims] = [f for f in findings if f.message.startswith("claimed")]
    assert claims.tier == "high"
    assert "phone claimed 0, counted 2" in claims.message


# -- the detectors' rules ---------------------------------------------------------------


@given(st.lists(st.integers(0, 9), min_size=12, max_size=18))
def test_luhn_accepts_exactly_one_check_digit(body: list[int]) -> None:
    text = "".join(map(str, body))
    assert sum(luhn_ok(text + str(d)) for d in range(10)) == 1


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("4111111111111111", True),
        ("378282246310005", True),  # Amex test number
        ("6011111111111117", True),  # Discover
        ("2223003122003222", True),  # Mastercard 2-series
        ("4111111111111112", False),
        ("1234567812345670", False),  # passes Luhn, no issuer starts with 1
    ],
)
def test_card_numbers_need_luhn_and_an_issuer_prefix(value: str, ok: bool) -> None:
    assert card_ok(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("GB82 WEST 1234 5698 7654 32", True),
        ("DE89 3704 0044 0532 0130 00", True),
        ("FR14 2004 1010 0505 0001 3M02 606", True),
        ("NO93 8601 1117 947", True),
        ("GB82 WEST 1234 5698 7654 3", False),  # one character short for GB
        ("DE88 3704 0044 0532 0130 00", False),  # check digits
        ("XX82 WEST 1234 5698 7654 32", False),  # no such country
    ],
)
def test_ibans_are_checked_by_mod_97_and_country_length(value: str, ok: bool) -> None:
    assert iban_ok(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("123-45-6789", True),
        ("000-12-3456", False),
        ("666-12-3456", False),
        ("900-12-3456", False),
        ("123-00-4567", False),
        ("123-45-0000", False),
        ("078-05-1120", False),  # the Woolworth wallet card number
    ],
)
def test_ssns_follow_the_ssa_rules(value: str, ok: bool) -> None:
    assert ssn_ok(value) is ok


def test_phone_numbers_are_confirmed_by_libphonenumber() -> None:
    assert phone_ok("(415) 555-2671", "US")
    assert phone_ok("+44 20 7946 0958", "US")
    assert not phone_ok("555-123-4567", "US")
    assert not phone_ok("+1 000 000 0000", "US")


@pytest.mark.parametrize(
    ("redact", "value", "shown"),
    [
        (redact_email, "jane.doe@example.com", "j***@e***.com"),
        (redact_card, "4111-1111-1111-1111", "**** **** **** 1111"),
        (redact_iban, "GB82WEST12345698765432", "GB** **** **** **** **** **32"),
        (redact_secret, "AKIAIOSFODNN7EXAMPLE", "AKIA… (20 characters)"),
    ],
)
def test_redactions_keep_only_what_is_safe_to_show(redact: object, value: str, shown: str) -> None:
    assert callable(redact)
    assert redact(value) == shown
