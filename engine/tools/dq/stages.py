"""The pipeline's stages as tools: ``dq.initialize`` to ``dq.report``.

Each stage reads the state and returns only the keys it changes; none changes
the state it is given. State keys, by the stage that writes them:

* ``dq.initialize``: ``records``, ``seed``, ``target_score``, ``max_iterations``
  (the settings, defaults filled in), ``table``, ``injected``, ``iteration`` (0),
  ``history`` (the baseline), ``quality_score``, ``anomaly_count``, ``target_met``,
  ``can_iterate``.
* ``dq.profile``: ``profile``. ``dq.detect``: ``anomalies``.
  ``dq.generate_rules``: ``rules``.
* ``dq.apply_rules``: ``table``, ``applied``.
* ``dq.evaluate``: ``iteration``, ``quality_score``, ``anomaly_count``,
  ``target_met``, ``can_iterate``, ``history``.
* ``dq.report``: ``report``.

``table`` holds where every generated row is: ``dataset`` (the rows being
checked), ``quarantine`` and ``dropped_duplicates`` (the rows set aside, each
entry ``{"row", "iteration", ...}``). The three lists are one value because a
row leaves the dataset only to enter one of the others: they change together,
and one value is one write (an S3 object for a large dataset, whatever its
size) where three would add two DynamoDB items a write (``docs/data-quality.md``).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.registry import ToolContext, tool
from engine.tools.dq.checks import (
    CHECKS,
    CheckResult,
    anomaly_count,
    failing_rows,
    present,
    quality_score,
    run_checks,
)
from engine.tools.dq.dataset import COLUMNS, Row, generate
from engine.tools.dq.rules import IMPUTE, QUARANTINE, REMEDIES, apply_rules

DEFAULT_RECORDS = 300
MAX_RECORDS = 100_000
DEFAULT_SEED = 42
DEFAULT_TARGET_SCORE = 0.95
DEFAULT_MAX_ITERATIONS = 5
MAX_ITERATIONS_CAP = 10
"""The graph's ``max_steps`` allows this many iterations (2 + 5 steps each)."""
TOP_FORMATS = 5
SCORE_FORMULA = "passing dataset rows / (dataset rows + quarantined rows)"

State = dict[str, Any]


def integer_setting(state: State, key: str, default: int, low: int, high: int) -> int:
    value = state.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key} must be an integer from {low} to {high}, got {value!r}")
    return value


def _score_setting(state: State, default: float = DEFAULT_TARGET_SCORE) -> float:
    value = state.get("target_score", default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"target_score must be a number from 0 to 1, got {value!r}")
    return float(value)


def _table(state: State) -> dict[str, Any]:
    table = state.get("table")
    if not isinstance(table, dict):
        raise ValueError("the state has no table: the pipeline starts with dq.initialize")
    return table


def current_rows(state: State) -> list[Row]:
    rows = _table(state).get("dataset")
    if not isinstance(rows, list):
        raise ValueError("the table has no dataset: the pipeline starts with dq.initialize")
    return rows


def _rows_left(state: State, key: str) -> list[dict[str, Any]]:
    entries = _table(state).get(key) or []
    if not isinstance(entries, list):
        raise ValueError(f"table.{key} must be a list")
    return entries


def _score(rows: Sequence[Row], results: Sequence[CheckResult], quarantined: int) -> float:
    return quality_score(len(rows), len(failing_rows(results)), quarantined)


@dataclass(frozen=True)
class _Assessment:
    """The dataset as it stands: its rows, the rows set aside, every check's result and the score."""

    rows: list[Row]
    quarantine: list[dict[str, Any]]
    dropped: list[dict[str, Any]]
    results: list[CheckResult]
    score: float


def _assess(state: State) -> _Assessment:
    rows = current_rows(state)
    quarantine = _rows_left(state, "quarantine")
    results = run_checks(rows)
    return _Assessment(
        rows,
        quarantine,
        _rows_left(state, "dropped_duplicates"),
        results,
        _score(rows, results, len(quarantine)),
    )


@tool("dq.initialize", description="Make a synthetic customer dataset with injected problems")
def initialize(state: State, ctx: ToolContext) -> State:
    """Generate ``records`` rows from ``seed`` and record the baseline score as iteration 0.

    ``target_score`` and ``max_iterations`` come from the state if it has them,
    else from the node's ``params`` (the graph's thresholds), else the defaults.
    """
    params = ctx.params if isinstance(ctx.params, dict) else {}
    records = integer_setting(state, "records", DEFAULT_RECORDS, 1, MAX_RECORDS)
    seed = integer_setting(state, "seed", DEFAULT_SEED, -(2**63), 2**63 - 1)
    target = _score_setting(state, _score_setting(params))
    max_iterations = integer_setting(
        state,
        "max_iterations",
        integer_setting(params, "max_iterations", DEFAULT_MAX_ITERATIONS, 1, MAX_ITERATIONS_CAP),
        1,
        MAX_ITERATIONS_CAP,
    )
    rows, injected = generate(records, seed)
    results = run_checks(rows)
    score = _score(rows, results, 0)
    anomalies = anomaly_count(results)
    baseline = {
        "iteration": 0,
        "quality_score": score,
        "anomaly_count": anomalies,
        "rows": len(rows),
        "quarantined": 0,
        "dropped_duplicates": 0,
        "detected": 0,
        "fixed": 0,
        "quarantined_anomalies": 0,
    }
    return {
        "records": records,
        "seed": seed,
        "target_score": target,
        "max_iterations": max_iterations,
        "table": {"dataset": rows, "quarantine": [], "dropped_duplicates": []},
        "injected": injected,
        "iteration": 0,
        "history": [baseline],
        "quality_score": score,
        "anomaly_count": anomalies,
        "target_met": score >= target,
        "can_iterate": True,
    }


_FORMAT_RUNS = (re.compile(r"[0-9]+"), re.compile(r"[A-Z]+"), re.compile(r"[a-z]+"))


def format_family(value: str) -> str:
    """The shape of a string: runs of digits become ``9``, upper case ``A``, lower case ``a``.

    ``"(555) 123-4567"`` is ``"(9) 9-9"``, ``"U.S."`` is ``"A.A."``, ``"United States"`` is ``"Aa Aa"``.
    """
    for pattern, mark in zip(_FORMAT_RUNS, "9Aa", strict=True):
        value = pattern.sub(mark, value)
    return value


def column_nulls_and_formats(rows: Sequence[Row], column: str) -> tuple[int, Counter[str]]:
    """The parts of a column's profile that add up over any split of the rows.

    How many values are missing, and how many strings there are of each
    :func:`format_family`, in the order the families first occur.
    """
    nulls = 0
    families: Counter[str] = Counter()
    for row in rows:
        value = row.get(column)
        if not present(value):
            nulls += 1
        elif isinstance(value, str):
            families[format_family(value)] += 1
    return nulls, families


def column_profile(rows: Sequence[Row], column: str, nulls: int, families: Counter[str]) -> dict[str, Any]:
    """A column's statistics, given its :func:`column_nulls_and_formats` over ``rows``.

    Computes the rest from ``rows``: the distinct values and the numeric
    range, mean and median, which no split of the rows adds up to.
    """
    given = [v for v in (row.get(column) for row in rows) if present(v)]
    stats: dict[str, Any] = {
        "null_count": nulls,
        "distinct_count": len({v if isinstance(v, str | int | float) else repr(v) for v in given}),
    }
    numbers = [v for v in given if isinstance(v, int | float) and not isinstance(v, bool)]
    if numbers:
        stats.update(
            min=min(numbers),
            max=max(numbers),
            mean=round(statistics.fmean(numbers), 2),
            median=statistics.median(numbers),
        )
    if families:
        stats["format_count"] = len(families)
        stats["formats"] = [{"format": f, "count": c} for f, c in families.most_common(TOP_FORMATS)]
    return stats


def profile_value(state: State, rows: Sequence[Row], columns: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``profile`` state value of ``rows`` from each column's :func:`column_profile`."""
    return {"iteration": int(state.get("iteration", 0)) + 1, "row_count": len(rows), "columns": columns}


@tool("dq.profile", description="Profile each column: nulls, distinct values, numeric range, formats")
def profile(state: State, ctx: ToolContext) -> State:
    """Per-column statistics of the current dataset."""
    rows = current_rows(state)
    columns = {
        column: column_profile(rows, column, *column_nulls_and_formats(rows, column)) for column in COLUMNS
    }
    return {"profile": profile_value(state, rows, columns)}


def anomalies_value(state: State, rows: Sequence[Row], results: Sequence[CheckResult]) -> dict[str, Any]:
    """The ``anomalies`` state value: what every check (``results``, in :data:`CHECKS` order) found in ``rows``."""
    return {
        "iteration": int(state.get("iteration", 0)) + 1,
        "total": anomaly_count(results),
        "rows_failing": len(failing_rows(results)),
        "checks": {
            result.check.name: {
                "column": result.check.column,
                "expectation": result.check.expectation,
                "count": result.unexpected_count,
                "examples": result.examples(rows),
            }
            for result in results
            if not result.success
        },
    }


@tool("dq.detect", description="Run every check and count the anomalies of each, with examples")
def detect(state: State, ctx: ToolContext) -> State:
    """Anomalies per failing check: count and a few example values."""
    rows = current_rows(state)
    return {"anomalies": anomalies_value(state, rows, run_checks(rows))}


def _median(state: State, column: str) -> int | None:
    profiled = state.get("profile") or {}
    median = profiled.get("columns", {}).get(column, {}).get("median")
    if isinstance(median, bool) or not isinstance(median, int | float):
        return None
    return round(median)


@tool("dq.generate_rules", description="Choose a rule for each check that found anomalies")
def generate_rules(state: State, ctx: ToolContext) -> State:
    """One rule per failing check, from :data:`~engine.tools.dq.rules.REMEDIES`, in priority order."""
    anomalies = state.get("anomalies")
    if not isinstance(anomalies, dict):
        raise ValueError("the state has no anomalies: dq.detect runs before dq.generate_rules")
    rules: list[dict[str, Any]] = []
    for check in CHECKS:
        found = anomalies.get("checks", {}).get(check.name)
        if not found:
            continue
        remedy = REMEDIES[check.name]
        rule: dict[str, Any] = {
            "check": check.name,
            "column": check.column,
            "action": remedy.action,
            "priority": remedy.priority,
            "detected": found["count"],
            "description": remedy.description,
        }
        if remedy.action == IMPUTE:
            median = _median(state, str(check.column))
            if median is None:
                rule.update(
                    action=QUARANTINE,
                    priority=REMEDIES["email_not_null"].priority,
                    description="no profiled median to fill from",
                )
            else:
                rule["params"] = {"value": median}
        rules.append(rule)
    rules.sort(key=lambda r: (r["priority"], r["check"]))
    return {
        "rules": {
            "iteration": anomalies.get("iteration"),
            "dataset_rows": len(current_rows(state)),
            "items": rules,
        }
    }


def rule_plan(state: State, rows: Sequence[Row]) -> list[dict[str, Any]]:
    """The rules ``dq.generate_rules`` made, checked to be made for ``rows``."""
    plan = state.get("rules")
    if not isinstance(plan, dict):
        raise ValueError("the state has no rules: dq.generate_rules runs before dq.apply_rules")
    if plan.get("dataset_rows") != len(rows):
        raise ValueError(
            f"the rules were made for {plan.get('dataset_rows')} rows, the dataset has {len(rows)}"
        )
    items: list[dict[str, Any]] = plan.get("items") or []
    return items


def applied_update(
    state: State,
    rows: list[Row],
    quarantined: list[dict[str, Any]],
    dropped: list[dict[str, Any]],
    stats: list[dict[str, Any]],
) -> State:
    """``dq.apply_rules``'s update: the table after the rules and what each rule did (``stats``, as dicts)."""
    return {
        "table": {
            "dataset": rows,
            "quarantine": [*_rows_left(state, "quarantine"), *quarantined],
            "dropped_duplicates": [*_rows_left(state, "dropped_duplicates"), *dropped],
        },
        "applied": {
            "iteration": int(state.get("iteration", 0)) + 1,
            "rules": stats,
            "fixed": sum(s["repaired"] + s["dropped"] for s in stats),
            "quarantined": sum(s["quarantined"] for s in stats),
            "quarantined_rows": len(quarantined),
            "dropped_rows": len(dropped),
        },
    }


@tool("dq.apply_rules", description="Repair, quarantine or drop the rows the rules were made for")
def apply(state: State, ctx: ToolContext) -> State:
    """Apply the rules; quarantined rows and dropped duplicates are kept in their own lists."""
    rows = current_rows(state)
    iteration = int(state.get("iteration", 0)) + 1
    outcome = apply_rules(rows, rule_plan(state, rows), iteration)
    stats = [s.as_dict() for s in outcome.stats]
    return applied_update(state, outcome.rows, outcome.quarantined, outcome.dropped, stats)


@tool("dq.evaluate", description="Score the dataset and decide whether another iteration is needed")
def evaluate(state: State, ctx: ToolContext) -> State:
    """Score the dataset, count the anomalies left, and close the iteration in ``history``."""
    now = _assess(state)
    rows, quarantine, dropped, results, score = now.rows, now.quarantine, now.dropped, now.results, now.score
    remaining = anomaly_count(results)
    iteration = int(state.get("iteration", 0)) + 1
    target = _score_setting(state)
    max_iterations = integer_setting(state, "max_iterations", DEFAULT_MAX_ITERATIONS, 1, MAX_ITERATIONS_CAP)
    applied = state.get("applied") or {}
    detected = (state.get("anomalies") or {}).get("total", 0)
    entry = {
        "iteration": iteration,
        "quality_score": score,
        "anomaly_count": remaining,
        "rows": len(rows),
        "quarantined": len(quarantine),
        "dropped_duplicates": len(dropped),
        "detected": detected,
        "fixed": applied.get("fixed", 0),
        "quarantined_anomalies": applied.get("quarantined", 0),
    }
    return {
        "iteration": iteration,
        "quality_score": score,
        "anomaly_count": remaining,
        "target_met": score >= target,
        "can_iterate": iteration < max_iterations,
        "history": [*(state.get("history") or []), entry],
    }


def _expectation(result: CheckResult, rows: Sequence[Row]) -> dict[str, Any]:
    return {
        "check": result.check.name,
        "expectation_config": {
            "expectation_type": result.check.expectation,
            "kwargs": result.check.kwargs,
        },
        "success": result.success,
        "result": result.result(rows),
    }


@tool("dq.report", description="Report the final validation in the shape of Great Expectations results")
def report(state: State, ctx: ToolContext) -> State:
    """The final checks as GE validation results, with the score history and what was fixed."""
    now = _assess(state)
    rows, quarantine, dropped, results, score = now.rows, now.quarantine, now.dropped, now.results, now.score
    history: list[dict[str, Any]] = list(state.get("history") or [])
    passed = sum(1 for r in results if r.success)
    target = _score_setting(state)
    found, fixed, quarantined = (
        sum(int(h.get(key, 0)) for h in history) for key in ("detected", "fixed", "quarantined_anomalies")
    )
    reasons = Counter(reason.split(":", 1)[0] for entry in quarantine for reason in entry.get("reasons", []))
    return {
        "report": {
            "success": passed == len(results),
            "statistics": {
                "evaluated_expectations": len(results),
                "successful_expectations": passed,
                "unsuccessful_expectations": len(results) - passed,
                "success_percent": round(100.0 * passed / len(results), 2),
            },
            "results": [_expectation(result, rows) for result in results],
            "quality": {
                "score_formula": SCORE_FORMULA,
                "score_before": history[0]["quality_score"] if history else None,
                "score_after": score,
                "target_score": target,
                "target_met": score >= target,
                "iterations": int(state.get("iteration", 0)),
                "history": history,
                "anomalies_found": found,
                "anomalies_fixed": fixed,
                "anomalies_quarantined": quarantined,
                "anomalies_remaining": anomaly_count(results),
                "rows_in": int(state.get("records", len(rows) + len(quarantine) + len(dropped))),
                "rows_out": len(rows),
                "quarantined_count": len(quarantine),
                "quarantine_reasons": dict(sorted(reasons.items())),
                "dropped_duplicate_count": len(dropped),
            },
            "meta": {
                "records": state.get("records"),
                "seed": state.get("seed"),
                "injected": state.get("injected"),
            },
        }
    }
