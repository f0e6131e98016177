"""Value-level normalisers and validators for the customer columns.

Each normaliser only changes how a value is written, never what it says: an
email is trimmed and lower-cased, a phone number loses its punctuation, a
country name becomes its ISO 3166-1 alpha-2 code. A value a normaliser cannot
read is returned as it is (or as ``None`` for countries), and the check it was
meant to fix keeps failing, which sends the row to quarantine.
"""

from __future__ import annotations

import re
from typing import Any

EMAIL_PATTERN = r"^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"
PHONE_CLEAN_PATTERN = r"^\+?[0-9]+$"
PHONE_E164_PATTERN = r"^\+[1-9][0-9]{7,14}$"

_EMAIL = re.compile(EMAIL_PATTERN)
_PHONE_CLEAN = re.compile(PHONE_CLEAN_PATTERN)
_PHONE_E164 = re.compile(PHONE_E164_PATTERN)
_PHONE_FORMATTING = re.compile(r"[\s().\-/]")

CALLING_CODES: dict[str, tuple[str, int, int]] = {
    "1": ("US", 10, 10),
    "33": ("FR", 9, 9),
    "44": ("GB", 10, 10),
    "49": ("DE", 10, 11),
    "55": ("BR", 10, 11),
    "61": ("AU", 9, 9),
    "81": ("JP", 9, 10),
    "91": ("IN", 10, 10),
}
"""Calling code -> (ISO country, shortest and longest national number) for the dataset's countries.

``+1`` is read as the United States: Canada and the other NANP countries are not
among the dataset's countries.
"""

COUNTRY_NAMES: dict[str, tuple[str, ...]] = {
    "US": ("USA", "U.S.", "U.S.A.", "United States", "United States of America", "America"),
    "GB": ("GBR", "UK", "U.K.", "United Kingdom", "Great Britain"),
    "DE": ("DEU", "Germany", "Deutschland"),
    "FR": ("FRA", "France"),
    "IN": ("IND", "India"),
    "BR": ("BRA", "Brazil", "Brasil"),
    "JP": ("JPN", "Japan"),
    "AU": ("AUS", "Australia"),
}
"""The spellings of each country that :func:`normalise_country` understands, besides its code."""

COUNTRY_CODES: tuple[str, ...] = tuple(COUNTRY_NAMES)


def _squash(text: str) -> str:
    return re.sub(r"[\s._\-]", "", text).upper()


_COUNTRY_LOOKUP: dict[str, str] = {
    _squash(name): code for code, names in COUNTRY_NAMES.items() for name in (code, *names)
}


def normalise_email(value: str) -> str:
    """Trim surrounding whitespace and lower-case the address."""
    return value.strip().lower()


def is_valid_email(value: Any) -> bool:
    """Whether ``value`` is a normalised, well-formed email address."""
    return isinstance(value, str) and _EMAIL.match(value) is not None and ".." not in value


def normalise_phone(value: str) -> str:
    """Remove the punctuation from a phone number, writing it as ``+<digits>`` where the code is known.

    Spaces, dots, dashes, slashes and parentheses are dropped; a leading ``00``
    becomes ``+``; a bare 10-digit number, or 11 digits starting with ``1``, is a
    North American number and gets ``+1``. Anything else keeps its digits without
    a ``+``. A value with other characters (letters, say) is returned unchanged.
    """
    compact = _PHONE_FORMATTING.sub("", value)
    if not _PHONE_CLEAN.match(compact):
        return value
    if compact.startswith("+"):
        return compact
    if compact.startswith("00"):
        return "+" + compact[2:]
    if len(compact) == 10:
        return "+1" + compact
    if len(compact) == 11 and compact.startswith("1"):
        return "+" + compact
    return compact


def is_clean_phone(value: Any) -> bool:
    """Whether a phone number is written without punctuation (``+`` and digits only)."""
    return isinstance(value, str) and _PHONE_CLEAN.match(value) is not None


def phone_country(value: Any) -> str | None:
    """The ISO country of a valid E.164 number of a known calling code, else ``None``."""
    if not isinstance(value, str) or not _PHONE_E164.match(value):
        return None
    digits = value[1:]
    for size in (1, 2, 3):
        known = CALLING_CODES.get(digits[:size])
        if known is not None:
            country, shortest, longest = known
            return country if shortest <= len(digits) - size <= longest else None
    return None


def is_valid_phone(value: Any) -> bool:
    """Whether ``value`` is an E.164 number whose calling code and length are known."""
    return phone_country(value) is not None


def normalise_country(value: str) -> str | None:
    """The ISO 3166-1 alpha-2 code of a known spelling ("U.S.", "usa", "United States"), else ``None``."""
    return _COUNTRY_LOOKUP.get(_squash(value))
