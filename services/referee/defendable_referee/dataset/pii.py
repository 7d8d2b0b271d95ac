"""Deterministic personal-data and secret detectors: a pattern finds candidates, a rule confirms.

A pattern (RE2 syntax: DuckDB runs it over every string value, safety.py) proposes a
candidate; the detector's own rule confirms it, with the checksum where the format has
one — payment cards (Luhn, ISO/IEC 7812 issuer prefixes), IBANs (ISO 13616 mod-97 and the
country's length), US SSNs (SSA rules: no area 000, 666 or 900–999, no group 00, no
serial 0000), phone numbers (Google's libphonenumber metadata via `phonenumbers`). Emails
and API keys / secrets have no checksum: their patterns are specific (a key's documented
prefix and length).

What leaves this module about a match is its detector and a redaction (`redact`): a
receipt must never carry the personal data it found. Redactions keep at most what
payment-card practice shows (the last four digits), the first character of an email's
local part and domain, and a secret's public prefix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import phonenumbers

PiiType = Literal["email", "phone", "payment_card", "us_ssn", "iban", "secret"]
PII_TYPES: tuple[PiiType, ...] = ("email", "phone", "payment_card", "us_ssn", "iban", "secret")

# ISO 13616 IBAN lengths by country (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip

# Card issuer prefixes (ISO/IEC 7812 IIN ranges of the major networks) and lengths.
_CARD_PREFIXES = re.compile(
    r"4|5[1-5]|2(?:22[1-9]|2[3-9]|[3-6]|7[01]|720)|3[47]|3(?:0[0-5]|[68])|6(?:011|5|4[4-9]|2)|35(?:2[89]|[3-8])"
)


def luhn_ok(digits: str) -> bool:
    """ISO/IEC 7812-1 Luhn check over a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_ok(candidate: str) -> bool:
    digits = re.sub(r"[ -]", "", candidate)
    return 13 <= len(digits) <= 19 and _CARD_PREFIXES.match(digits) is not None and luhn_ok(digits)


def iban_ok(candidate: str) -> bool:
    """ISO 13616: the country's length, then mod 97 of the rearranged number equals 1 (ISO 7064)."""
    iban = candidate.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban[2:4].isdigit():
        return False
    remainder = 0
    for ch in iban[4:] + iban[:4]:
        value = int(ch, 36)  # '0'-'9' → 0-9, 'A'-'Z' → 10-35
        remainder = (remainder * (100 if value > 9 else 10) + value) % 97
    return remainder == 1


_SSN_PUBLICISED = frozenset({"078051120", "219099999"})  # SSA: numbers printed on sample cards


def ssn_ok(candidate: str) -> bool:
    """US SSN structure rules (SSA): area 001–665 or 667–899, group 01–99, serial 0001–9999."""
    digits = candidate.replace("-", "")
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return (
        len(digits) == 9
        and area not in ("000", "666")
        and area[0] != "9"
        and group != "00"
        and serial != "0000"
        and digits not in _SSN_PUBLICISED
    )


def phone_ok(candidate: str, region: str) -> bool:
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


def email_ok(candidate: str) -> bool:
    local, _, domain = candidate.rpartition("@")
    return bool(local) and not local.startswith(".") and ".." not in candidate and "." in domain


# -- redaction ----------------------------------------------------------------


def _mask_digits(text: str, keep_last: int) -> str:
    total = sum(ch.isdigit() for ch in text)
    seen = 0
    out = []
    for ch in text:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > total - keep_last else "*")
        else:
            out.append(ch)
    return "".join(out)


def redact_email(candidate: str) -> str:
    local, _, domain = candidate.rpartition("@")
    host, _, tld = domain.rpartition(".")
    return f"{local[:1]}***@{host[:1]}***.{tld}"


def redact_card(candidate: str) -> str:
    digits = re.sub(r"\D", "", candidate)
    return "**** **** **** " + digits[-4:]


def redact_iban(candidate: str) -> str:
    iban = candidate.replace(" ", "").upper()
    return iban[:2] + "**" + " ****" * ((len(iban) - 6) // 4) + " **" + iban[-2:]


def redact_secret(candidate: str) -> str:
    if candidate.startswith("-----BEGIN"):
        return "-----BEGIN … PRIVATE KEY----- (key body withheld)"
    return f"{candidate[:4]}… ({len(candidate)} characters)"


@dataclass(frozen=True)
class Detector:
    type: PiiType
    label: str
    pattern: str  # RE2: what DuckDB extracts as candidates
    checksum: str  # what confirms a candidate, for the finding's message
    confirm: Callable[[str, str], bool]  # (candidate, phone region) -> is it one?
    redact: Callable[[str], str]


DETECTORS: dict[PiiType, Detector] = {
    "email": Detector(
        "email",
        "email addresses",
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}",
        "pattern",
        lambda m, _: email_ok(m),
        redact_email,
    ),
    "phone": Detector(
        "phone",
        "phone numbers",
        r"\+[1-9][0-9 ().-]{6,18}[0-9]|(?:\([2-9][0-9]{2}\) ?|\b[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4}\b",
        "libphonenumber validity",
        phone_ok,
        lambda m: _mask_digits(m, 2),
    ),
    "payment_card": Detector(
        "payment_card",
        "payment card numbers",
        r"\b[0-9](?:[ -]?[0-9]){12,18}\b",
        "Luhn and issuer prefix",
        lambda m, _: card_ok(m),
        redact_card,
    ),
    "us_ssn": Detector(
        "us_ssn",
        "US social security numbers",
        r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
        "SSA area/group/serial rules",
        lambda m, _: ssn_ok(m),
        lambda m: "***-**-****",
    ),
    "iban": Detector(
        "iban",
        "IBANs",
        r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
        "ISO 13616 mod-97 and country length",
        lambda m, _: iban_ok(m),
        redact_iban,
    ),
    "secret": Detector(
        "secret",
        "API keys and secrets",
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36}\b|\bgithub_pat_[A-Za-z0-9_]{82}\b"
        r"|\bxox[abprs]-[A-Za-z0-9-]{10,72}|\b[sr]k_live_[A-Za-z0-9]{24,99}\b|\bAIza[0-9A-Za-z_-]{35}"
        r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
        r"|-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----",
        "documented key prefix and length",
        lambda m, _: True,
        redact_secret,
    ),
}

# A cheap test a value must pass before any pattern runs on it: every pattern needs an '@',
# a '+' before a digit, a digit run of three, a key prefix or a PEM header.
PREFILTER = r"@|\+[0-9]|[0-9]{3}|-----BEGIN|AKIA|ASIA|gh[pousr]_|github_pat_|xox[abprs]-|k_live_|AIza|eyJ"
