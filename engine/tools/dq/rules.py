"""Rules: which remedy answers which check, and applying a set of rules to a dataset.

Each failing check has one remedy (:data:`REMEDIES`). Remedies run in priority
order on each row a check flagged when the rules were made:

1. ``drop_exact_duplicate`` (priority 0) drops a row identical to an earlier
   row, which stays. Nothing is lost: the kept row holds the same values.
2. ``quarantine`` (10) moves a row whose problem no rule can repair (a missing
   email, an impossible age, a phone number with too few digits) to the
   quarantine list with the reason.
3. Repairs (20, 30) change how a value is written (``normalise_*``), fill a
   missing country from the phone's calling code, or fill a missing number
   with the profiled median. A repair whose result still fails its check
   quarantines the row instead. A quarantined row is kept as it was found.

Rules act on the rows flagged when they were made, not on problems a repair
uncovers: a phone number is validated once it is written without punctuation,
and two rows that become identical once normalised are dropped as duplicates
the next time the checks run. That is what the pipeline's loop is for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.tools.dq.checks import CHECKS_BY_NAME, UNIQUE, first_occurrences, row_key, run_checks
from engine.tools.dq.dataset import Row
from engine.tools.dq.normalise import normalise_country, normalise_email, normalise_phone, phone_country

DROP = "drop_exact_duplicate"
QUARANTINE = "quarantine"
IMPUTE = "impute_median"


@dataclass(frozen=True)
class Remedy:
    action: str
    priority: int
    description: str


_QUARANTINE_REASONS = {
    "customer_id_not_null": "a customer without an id cannot be identified",
    "email_not_null": "the email is required and cannot be made up",
    "age_range": "an impossible age cannot be corrected without its source",
    "income_range": "an impossible income cannot be corrected without its source",
    "phone_valid": "a phone number too short or of an unknown calling code cannot be corrected",
}

REMEDIES: dict[str, Remedy] = {
    UNIQUE: Remedy(DROP, 0, "drop the later copy of an exact duplicate; the first occurrence stays"),
    **{check: Remedy(QUARANTINE, 10, why) for check, why in _QUARANTINE_REASONS.items()},
    "email_format": Remedy("normalise_email", 20, "trim and lower-case the address"),
    "country_in_set": Remedy("normalise_country", 20, "write a known country name as its ISO code"),
    "phone_format": Remedy("normalise_phone", 20, "remove punctuation, write as +<calling code><number>"),
    "country_not_null": Remedy(
        "infer_country_from_phone", 30, "take the country of the (normalised) phone's calling code"
    ),
    "age_not_null": Remedy(IMPUTE, 30, "fill with the median age of the profiled rows"),
    "income_not_null": Remedy(IMPUTE, 30, "fill with the median income of the profiled rows"),
}
"""The remedy for each check."""


def _normalise(func: Callable[[str], str | None]) -> Callable[[Row, str, Mapping[str, Any]], Any]:
    def repair(row: Row, column: str, params: Mapping[str, Any]) -> Any:
        value = row.get(column)
        return func(value) if isinstance(value, str) else None

    return repair


def _infer_country(row: Row, column: str, params: Mapping[str, Any]) -> Any:
    return phone_country(row.get("phone"))


def _impute(row: Row, column: str, params: Mapping[str, Any]) -> Any:
    return params.get("value")


REPAIRS: dict[str, Callable[[Row, str, Mapping[str, Any]], Any]] = {
    "normalise_email": _normalise(normalise_email),
    "normalise_country": _normalise(normalise_country),
    "normalise_phone": _normalise(normalise_phone),
    "infer_country_from_phone": _infer_country,
    IMPUTE: _impute,
}
"""Repair actions: each returns the column's new value, or ``None`` when it has none to offer."""


def _reason(check: str, row: Row, why: str) -> str:
    column = CHECKS_BY_NAME[check].column
    shown = f"{column}={row.get(column)!r}" if column else "row"
    return f"{check}: {shown}: {why}"


@dataclass
class RuleStats:
    """What happened to the rows one rule was made for."""

    check: str
    action: str
    selected: int = 0
    repaired: int = 0
    quarantined: int = 0
    dropped: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "action": self.action,
            "selected": self.selected,
            "repaired": self.repaired,
            "quarantined": self.quarantined,
            "dropped": self.dropped,
        }


@dataclass
class Outcome:
    """The dataset after the rules, and the rows that left it.

    ``kept`` holds the index in the input of each row of ``rows``; ``repaired``
    the indices of the kept rows a rule changed (their new dicts are in ``rows``).
    """

    rows: list[Row] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    stats: list[RuleStats] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    repaired: list[int] = field(default_factory=list)


def order_rules(rules: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """``rules`` in the order they run (priority, then check); raises ``ValueError`` for an unknown check or action."""
    ordered = sorted(rules, key=lambda rule: (int(rule["priority"]), str(rule["check"])))
    for rule in ordered:
        if rule["check"] not in CHECKS_BY_NAME:
            raise ValueError(f"rule for unknown check {rule['check']!r}")
        if rule["action"] not in (DROP, QUARANTINE, *REPAIRS):
            raise ValueError(f"rule with unknown action {rule['action']!r}")
    return ordered


def apply_rules(rows: Sequence[Row], rules: Sequence[Mapping[str, Any]], iteration: int) -> Outcome:
    """Apply ``rules`` to the rows their checks flag in ``rows``; never changes ``rows`` or its dicts."""
    ordered = order_rules(rules)
    flagged = {result.check.name: set(result.unexpected) for result in run_checks(rows)}
    repeats = first_occurrences(rows)
    return apply_flagged(rows, ordered, flagged, repeats, rows.__getitem__, iteration)


def apply_flagged(
    rows: Sequence[Row],
    ordered: Sequence[Mapping[str, Any]],
    flagged: Mapping[str, set[int]],
    repeats: Mapping[int, int],
    row_at: Callable[[int], Row],
    iteration: int,
) -> Outcome:
    """Apply the rules ``ordered`` (from :func:`order_rules`) to the rows of ``rows`` that ``flagged`` names.

    ``flagged`` maps every check a rule is for to the indices of ``rows`` it
    flags. ``repeats`` maps each index of ``rows`` that repeats an earlier row
    to that row's index for ``row_at``: an index of ``rows`` in
    :func:`apply_rules`, of the whole dataset for a chunk of it (the earlier
    row may be in another chunk). Never changes ``rows`` or its dicts.
    """
    stats = [RuleStats(str(rule["check"]), str(rule["action"])) for rule in ordered]
    outcome = Outcome(stats=stats)
    for index, row in enumerate(rows):
        mine = [
            (rule, stat) for rule, stat in zip(ordered, stats, strict=True) if index in flagged[rule["check"]]
        ]
        if not mine:
            outcome.rows.append(row)
            outcome.kept.append(index)
            continue
        for _, stat in mine:
            stat.selected += 1
        if any(rule["action"] == DROP for rule, _ in mine):
            first = row_at(repeats[index])
            if row_key(first) != row_key(row):
                raise AssertionError(f"row {index} is not an exact copy of row {repeats[index]}")
            outcome.dropped.append({"row": row, "iteration": iteration})
            for _, stat in mine:
                stat.dropped += 1
            continue
        reasons = [
            _reason(str(rule["check"]), row, str(rule.get("description") or "no rule can repair it"))
            for rule, _ in mine
            if rule["action"] == QUARANTINE
        ]
        updated = dict(row)
        if not reasons:
            for rule, _ in mine:
                check = CHECKS_BY_NAME[str(rule["check"])]
                column = str(check.column)
                value = REPAIRS[str(rule["action"])](updated, column, rule.get("params") or {})
                candidate = {**updated, column: value}
                if value is None or check.test is None or check.test(candidate) is not True:
                    reasons.append(_reason(check.name, updated, f"{rule['action']} cannot repair it"))
                    break
                updated = candidate
        if reasons:
            outcome.quarantined.append({"row": row, "iteration": iteration, "reasons": reasons})
            for _, stat in mine:
                stat.quarantined += 1
        else:
            outcome.rows.append(updated)
            outcome.kept.append(index)
            outcome.repaired.append(index)
            for _, stat in mine:
                stat.repaired += 1
    return outcome
