"""A synthetic customer dataset with known, injected problems, made deterministically from a seed.

Every customer is generated clean, then written the way real exports write
things: countries as codes or names ("US", "U.S.", "United States", "us") and
phone numbers in national and international styles. On top of that, disjoint
sets of customers receive one injected problem each, in fixed proportions of
the dataset size (see :data:`PROBLEM_RATES`), and some clean customers are
copied: exact copies, and copies written differently (email case, country
spelling, phone style) that become exact duplicates only once normalised.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from engine.tools.dq.normalise import CALLING_CODES, COUNTRY_NAMES

Row = dict[str, Any]

COLUMNS: tuple[str, ...] = ("customer_id", "name", "email", "age", "income", "country", "phone")

PROBLEM_RATES: dict[str, float] = {
    "missing_email": 0.005,
    "invalid_email": 0.007,
    "email_case": 0.04,
    "missing_age": 0.02,
    "age_outlier": 0.007,
    "missing_income": 0.02,
    "income_outlier": 0.007,
    "missing_country": 0.02,
    "invalid_phone": 0.007,
}
"""The share of rows given each problem. Problems go to distinct customers."""

DUPLICATE_RATES: dict[str, float] = {"exact_duplicate": 0.02, "variant_duplicate": 0.02}
"""The share of rows that are copies of another customer (exact, or written differently)."""

_FIRST = (
    "Alice", "Bruno", "Chen", "Dana", "Emeka", "Fatima", "Gustav", "Hana", "Ivan", "Jules",
    "Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
)  # fmt: skip
_LAST = (
    "Smith", "Garcia", "Müller", "Tanaka", "Okafor", "Dubois", "Singh", "Silva", "Brown", "Kowalski",
    "Nguyen", "Rossi", "Jensen", "Cohen", "Murphy", "Ahmed", "Novak", "Larsen", "Costa", "Khan",
)  # fmt: skip
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
_COUNTRY_WEIGHTS = {"US": 40, "GB": 15, "DE": 10, "FR": 10, "IN": 10, "BR": 5, "JP": 5, "AU": 5}
_CODE_OF = {country: code for code, (country, _, _) in CALLING_CODES.items()}
_LENGTH_OF = {country: shortest for country, shortest, _ in CALLING_CODES.values()}


def _count(n: int, rate: float) -> int:
    return round(rate * n)


def _national_number(rng: random.Random, country: str) -> str:
    length = _LENGTH_OF[country]
    return str(rng.randint(2, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(length - 1))


def _phone_styles(country: str, national: str) -> list[str]:
    code = _CODE_OF[country]
    half = len(national) // 2
    styles = [
        f"+{code}{national}",
        f"+{code} {national[:3]} {national[3:6]} {national[6:]}",
        f"00{code} {national}",
        f"(+{code}) {national[:half]}-{national[half:]}",
    ]
    if country == "US":
        area, exchange, line = national[:3], national[3:6], national[6:]
        styles += [
            f"({area}) {exchange}-{line}",
            f"{area}-{exchange}-{line}",
            f"{area}.{exchange}.{line}",
            f"1-{area}-{exchange}-{line}",
        ]
    return styles


def _render_phone(rng: random.Random, country: str, national: str, avoid: str | None = None) -> str:
    styles = _phone_styles(country, national)
    if avoid is None and rng.random() < 0.45:
        return styles[0]
    return rng.choice([s for s in styles if s != avoid])


def _render_country(rng: random.Random, country: str, avoid: str | None = None) -> str:
    spellings = [country, *COUNTRY_NAMES[country], country.lower(), COUNTRY_NAMES[country][-1].upper()]
    if avoid is None and rng.random() < 0.55:
        return country
    return rng.choice([s for s in spellings if s != avoid])


def _customer(rng: random.Random, index: int) -> tuple[Row, str, str]:
    country = rng.choices(list(_COUNTRY_WEIGHTS), weights=list(_COUNTRY_WEIGHTS.values()))[0]
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    national = _national_number(rng, country)
    local = f"{first}.{last}".lower().replace("ü", "ue")
    row: Row = {
        "customer_id": f"C{index:05d}",
        "name": f"{first} {last}",
        "email": f"{local}{index}@{rng.choice(_DOMAINS)}",
        "age": rng.randint(18, 85),
        "income": rng.randint(120, 2_500) * 100,
        "country": _render_country(rng, country),
        "phone": _render_phone(rng, country, national),
    }
    return row, country, national


def _invalid_email(rng: random.Random, email: str) -> str:
    local, domain = email.split("@")
    return rng.choice(
        [f"{local}@", f"{local}{domain}", f"{local}@@{domain}", f"{local} at {domain}", f"@{domain}"]
    )


def _email_case(rng: random.Random, email: str) -> str:
    local, domain = email.split("@")
    return rng.choice(
        [email.upper(), f"  {email}", f"{local.title()}@{domain.upper()}", f"{email} ", f" {email.title()} "]
    )


def _short_phone(rng: random.Random, country: str) -> str:
    digits = "".join(str(rng.randint(0, 9)) for _ in range(7))
    return rng.choice(
        [f"{digits[:3]}-{digits[3:]}", f"+{_CODE_OF[country]} {digits[:4]}", f"({digits[:3]}) {digits[3:6]}"]
    )


Injector = Callable[[random.Random, Row, str], Row]

_INJECTORS: dict[str, Injector] = {
    "missing_email": lambda rng, row, country: {**row, "email": None},
    "invalid_email": lambda rng, row, country: {**row, "email": _invalid_email(rng, row["email"])},
    "email_case": lambda rng, row, country: {**row, "email": _email_case(rng, row["email"])},
    "missing_age": lambda rng, row, country: {**row, "age": None},
    "age_outlier": lambda rng, row, country: {**row, "age": rng.choice([450, -3, 999, 130, 212])},
    "missing_income": lambda rng, row, country: {**row, "income": None},
    "income_outlier": lambda rng, row, country: {
        **row,
        "income": rng.choice([-25_000, -1, 10**12, 250_000_000]),
    },
    "missing_country": lambda rng, row, country: {**row, "country": None},
    "invalid_phone": lambda rng, row, country: {**row, "phone": _short_phone(rng, country)},
}
"""How each problem in :data:`PROBLEM_RATES` is written into a row (given the row's true country)."""


def generate(n: int, seed: int) -> tuple[list[Row], dict[str, int]]:
    """Return ``n`` customer rows made from ``seed`` and how many rows received each problem."""
    rng = random.Random(seed)
    copies = {kind: _count(n, rate) for kind, rate in DUPLICATE_RATES.items()}
    base_n = n - sum(copies.values())
    base: list[Row] = []
    truth: list[tuple[str, str]] = []
    for index in range(base_n):
        row, country, national = _customer(rng, index + 1)
        base.append(row)
        truth.append((country, national))
    order = list(range(base_n))
    rng.shuffle(order)
    cursor = 0

    def take(k: int) -> list[int]:
        nonlocal cursor
        picked = order[cursor : cursor + k]
        cursor += len(picked)
        return picked

    injected: dict[str, int] = {}
    for kind, rate in PROBLEM_RATES.items():
        picked = take(_count(n, rate))
        injected[kind] = len(picked)
        for i in picked:
            base[i] = _INJECTORS[kind](rng, base[i], truth[i][0])
    extra: list[Row] = []
    for kind, k in copies.items():
        picked = take(k)
        injected[kind] = len(picked)
        for i in picked:
            if kind == "exact_duplicate":
                extra.append(dict(base[i]))
            else:
                extra.append(_variant(rng, base[i], *truth[i]))
    rows = list(base)
    for row in extra:
        rows.insert(rng.randint(0, len(rows)), row)
    return rows, injected


def _variant(rng: random.Random, row: Row, country: str, national: str) -> Row:
    email = str(row["email"])
    return {
        **row,
        "email": email.upper() if rng.random() < 0.5 else f" {email.title()}",
        "country": _render_country(rng, country, avoid=row["country"]),
        "phone": _render_phone(rng, country, national, avoid=row["phone"]),
    }
