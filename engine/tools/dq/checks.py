"""The checks (Great Expectations style expectations) and the quality score.

A row-level check looks at one row and says pass, fail, or "does not apply"
(a format check on a missing value, which its not-null check already counts;
a phone validity check on a number still written with punctuation). The one
table-level check, ``rows_unique``, flags every row that repeats an earlier
row exactly; the first occurrence passes.

The score is defined in :mod:`engine.tools.dq`: rows in the dataset that pass
every check, divided by the rows in the dataset plus the rows in quarantine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.tools.dq.dataset import COLUMNS, Row
from engine.tools.dq.normalise import (
    COUNTRY_CODES,
    EMAIL_PATTERN,
    PHONE_CLEAN_PATTERN,
    is_clean_phone,
    is_valid_email,
    is_valid_phone,
)

AGE_RANGE = (0, 120)
INCOME_RANGE = (0, 10_000_000)
EXAMPLES = 5
UNIQUE = "rows_unique"


@dataclass(frozen=True)
class Check:
    """One expectation: its name, the GE expectation it mirrors, and a row test.

    ``test`` returns ``True`` (pass), ``False`` (fail) or ``None`` (does not apply
    to this row). Table-level checks have no row test.
    """

    name: str
    expectation: str
    column: str | None
    kwargs: dict[str, Any]
    test: Callable[[Row], bool | None] | None


def present(value: Any) -> bool:
    """Whether a value counts as given: not ``None`` and not a blank string."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def _not_null(column: str) -> Check:
    return Check(
        f"{column}_not_null",
        "expect_column_values_to_not_be_null",
        column,
        {"column": column},
        lambda row: present(row.get(column)),
    )


def _between(column: str, low: int, high: int) -> Check:
    def test(row: Row) -> bool | None:
        value = row.get(column)
        if not present(value):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return low <= value <= high

    return Check(
        f"{column}_range",
        "expect_column_values_to_be_between",
        column,
        {"column": column, "min_value": low, "max_value": high},
        test,
    )


def _if_present(column: str, predicate: Callable[[Any], bool]) -> Callable[[Row], bool | None]:
    def test(row: Row) -> bool | None:
        value = row.get(column)
        return predicate(value) if present(value) else None

    return test


def _phone_valid(row: Row) -> bool | None:
    phone = row.get("phone")
    if not present(phone) or not is_clean_phone(phone):
        return None
    return is_valid_phone(phone)


CHECKS: tuple[Check, ...] = (
    _not_null("customer_id"),
    _not_null("email"),
    Check(
        "email_format",
        "expect_column_values_to_match_regex",
        "email",
        {"column": "email", "regex": EMAIL_PATTERN},
        _if_present("email", is_valid_email),
    ),
    _not_null("age"),
    _between("age", *AGE_RANGE),
    _not_null("income"),
    _between("income", *INCOME_RANGE),
    _not_null("country"),
    Check(
        "country_in_set",
        "expect_column_values_to_be_in_set",
        "country",
        {"column": "country", "value_set": list(COUNTRY_CODES)},
        _if_present("country", lambda value: value in COUNTRY_CODES),
    ),
    Check(
        "phone_format",
        "expect_column_values_to_match_regex",
        "phone",
        {"column": "phone", "regex": PHONE_CLEAN_PATTERN},
        _if_present("phone", is_clean_phone),
    ),
    Check(
        "phone_valid",
        "expect_column_values_to_be_valid_phone_numbers",
        "phone",
        {"column": "phone", "format": "E.164", "applies_to": "phone numbers without punctuation"},
        _phone_valid,
    ),
    Check(
        UNIQUE,
        "expect_compound_columns_to_be_unique",
        None,
        {"column_list": list(COLUMNS), "unexpected": "rows repeating an earlier row"},
        None,
    ),
)
"""Every check, in the order reports list them."""

CHECKS_BY_NAME: dict[str, Check] = {check.name: check for check in CHECKS}


def row_key(row: Row) -> tuple[Any, ...]:
    """The values that make two rows exact duplicates: every column."""
    return tuple(row.get(column) for column in COLUMNS)


def first_occurrences(rows: Sequence[Row]) -> dict[int, int]:
    """Map the index of each row that repeats an earlier row exactly to the index of that earlier row."""
    seen: dict[tuple[Any, ...], int] = {}
    repeats: dict[int, int] = {}
    for index, row in enumerate(rows):
        first = seen.setdefault(row_key(row), index)
        if first != index:
            repeats[index] = first
    return repeats


@dataclass(frozen=True)
class CheckResult:
    """What one check found in a dataset; ``unexpected`` holds row indices."""

    check: Check
    element_count: int
    missing_count: int
    unexpected: tuple[int, ...]

    @property
    def unexpected_count(self) -> int:
        return len(self.unexpected)

    @property
    def success(self) -> bool:
        return not self.unexpected

    def examples(self, rows: Sequence[Row], limit: int = EXAMPLES) -> list[Any]:
        """The first ``limit`` unexpected values (for ``rows_unique``, the repeated rows' ids)."""
        column = self.check.column
        if column is None:
            return [{"customer_id": rows[i].get("customer_id")} for i in self.unexpected[:limit]]
        return [rows[i].get(column) for i in self.unexpected[:limit]]

    def result(self, rows: Sequence[Row]) -> dict[str, Any]:
        """The ``result`` block of a GE validation result: counts, percent, a few examples."""
        checked = self.element_count - self.missing_count
        percent = 100.0 * self.unexpected_count / checked if checked else 0.0
        return {
            "element_count": self.element_count,
            "missing_count": self.missing_count,
            "unexpected_count": self.unexpected_count,
            "unexpected_percent": round(percent, 4),
            "partial_unexpected_list": self.examples(rows),
        }


def run_row_check(check: Check, rows: Sequence[Row]) -> CheckResult:
    """Run the row-level ``check`` on each of ``rows``."""
    if check.test is None:
        raise ValueError(f"{check.name} is not a row-level check")
    unexpected: list[int] = []
    missing = 0
    for index, row in enumerate(rows):
        verdict = check.test(row)
        if verdict is None:
            missing += 1
        elif not verdict:
            unexpected.append(index)
    return CheckResult(check, len(rows), missing, tuple(unexpected))


def unique_result(element_count: int, repeats: Mapping[int, int]) -> CheckResult:
    """The ``rows_unique`` result of ``element_count`` rows whose repeats (:func:`first_occurrences`) are ``repeats``."""
    return CheckResult(CHECKS_BY_NAME[UNIQUE], element_count, 0, tuple(sorted(repeats)))


def run_checks(rows: Sequence[Row]) -> list[CheckResult]:
    """Run every check on ``rows``, in :data:`CHECKS` order."""
    return [
        unique_result(len(rows), first_occurrences(rows))
        if check.test is None
        else run_row_check(check, rows)
        for check in CHECKS
    ]


def row_failures(row: Row) -> list[str]:
    """The names of the row-level checks ``row`` fails on its own."""
    return [check.name for check in CHECKS if check.test is not None and check.test(row) is False]


def anomaly_count(results: Sequence[CheckResult]) -> int:
    """Every (row, check) failure: a row failing two checks counts twice."""
    return sum(result.unexpected_count for result in results)


def failing_rows(results: Sequence[CheckResult]) -> set[int]:
    """The indices of the rows that fail at least one check."""
    return {index for result in results for index in result.unexpected}


def quality_score(dataset_rows: int, failing: int, quarantined: int) -> float:
    """``(dataset_rows - failing) / (dataset_rows + quarantined)``; 1.0 for an empty population."""
    population = dataset_rows + quarantined
    if population == 0:
        return 1.0
    return round((dataset_rows - failing) / population, 6)
