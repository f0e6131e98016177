"""Chunk tools for the parallel pipeline (``engine/graphs/data_quality_parallel.json``).

Each iteration splits the dataset into record ranges (``dq.split``) and fans
out twice over them: ``dq.profile_chunk`` then ``dq.detect_chunk`` in each
branch, joined by ``dq.combine``; then, after the sequential
``dq.generate_rules``, ``dq.apply_chunk`` in each branch, joined by
``dq.combine_fixes``. The sequential ``dq.evaluate`` and ``dq.report`` follow,
and the loop goes back to ``dq.split``.

A branch does the work that is local to a row and adds up over any split of
the rows: null counts, format families, the row-level checks, the repairs.
The joins do what depends on the whole dataset: distinct counts, numeric
range, mean and median, exact duplicates (a row repeats a row of any chunk),
and putting the chunks' results back in row order. So every state value the
sequential stages write is the same (``docs/data-quality.md`` says why).

State keys, by the tool that writes them:

* ``dq.split``: ``chunks``, the ranges ``[{"start", "stop"}]`` (``chunks_count``
  of them, default 4; fewer when the dataset has fewer rows).
* ``dq.profile_chunk``, ``dq.detect_chunk``, ``dq.apply_chunk``: ``chunk_result``
  only, in their branch (the map collects it into ``chunk_results``, then
  ``chunk_fixes``). A branch reads ``chunk``, its range.
* ``dq.combine``: ``profile``, ``anomalies`` (as ``dq.profile`` and
  ``dq.detect`` write them) and ``duplicates``, ``[[index, first index], ...]``.
* ``dq.combine_fixes``: ``table``, ``applied`` (as ``dq.apply_rules`` writes them).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from engine.registry import ToolContext, tool
from engine.tools.dq.checks import (
    CHECKS,
    CHECKS_BY_NAME,
    UNIQUE,
    CheckResult,
    first_occurrences,
    run_row_check,
    unique_result,
)
from engine.tools.dq.dataset import COLUMNS, Row
from engine.tools.dq.rules import apply_flagged, order_rules
from engine.tools.dq.stages import (
    anomalies_value,
    applied_update,
    column_nulls_and_formats,
    column_profile,
    current_rows,
    integer_setting,
    profile_value,
    rule_plan,
)

DEFAULT_CHUNKS = 4
MAX_CHUNKS = 100

State = dict[str, Any]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range(value: Any, rows: int, what: str) -> tuple[int, int]:
    start, stop = (value.get("start"), value.get("stop")) if isinstance(value, dict) else (None, None)
    if (
        isinstance(start, bool)
        or isinstance(stop, bool)
        or not isinstance(start, int)
        or not isinstance(stop, int)
    ):
        raise ValueError(f"{what} must be a range {{'start': int, 'stop': int}}, got {value!r}")
    if not 0 <= start <= stop <= rows:
        raise ValueError(f"{what} {start}..{stop} is not within the dataset's {rows} rows")
    return start, stop


def _chunk(state: State, rows: list[Row]) -> tuple[int, int]:
    return _range(state.get("chunk"), len(rows), "chunk")


def _joined(state: State, key: str, rows: list[Row]) -> list[tuple[int, int, dict[str, Any]]]:
    """``(start, stop, result)`` of each chunk, checked to cover the dataset in order and to match ``chunks``."""
    chunks, results = state.get("chunks"), state.get(key)
    if not isinstance(chunks, list) or not chunks:
        raise ValueError("the state has no chunks: dq.split runs before the fan-out")
    if not isinstance(results, list) or len(results) != len(chunks):
        count = len(results) if isinstance(results, list) else 0
        raise ValueError(f"{key} holds {count} results for {len(chunks)} chunks")
    joined: list[tuple[int, int, dict[str, Any]]] = []
    expected = 0
    for index, (chunk, result) in enumerate(zip(chunks, results, strict=True)):
        start, stop = _range(chunk, len(rows), f"chunk {index}")
        if start != expected:
            raise ValueError(
                f"chunk {index} starts at row {start}, not {expected}: the chunks must cover the dataset"
            )
        if not isinstance(result, dict) or _range(result, len(rows), f"{key}[{index}]") != (start, stop):
            raise ValueError(f"{key}[{index}] is not the result of chunk {index} ({start}..{stop})")
        joined.append((start, stop, result))
        expected = stop
    if expected != len(rows):
        raise ValueError(f"the chunks end at row {expected}, the dataset has {len(rows)}")
    return joined


@tool("dq.split", description="Split the dataset into record ranges for the per-chunk tools")
def split(state: State, ctx: ToolContext) -> State:
    """``chunks_count`` contiguous ranges of the dataset whose sizes differ by at most one row."""
    rows = current_rows(state)
    count = integer_setting(state, "chunks_count", DEFAULT_CHUNKS, 1, MAX_CHUNKS)
    parts = max(1, min(count, len(rows)))
    total = len(rows)
    return {"chunks": [{"start": i * total // parts, "stop": (i + 1) * total // parts} for i in range(parts)]}


@tool("dq.profile_chunk", description="Null counts and format families of one chunk's columns")
def profile_chunk(state: State, ctx: ToolContext) -> State:
    """Start the branch's ``chunk_result`` with each column's nulls and format families in its range."""
    rows = current_rows(state)
    start, stop = _chunk(state, rows)
    part = rows[start:stop]
    columns: dict[str, Any] = {}
    for column in COLUMNS:
        nulls, families = column_nulls_and_formats(part, column)
        columns[column] = {"null_count": nulls, "formats": [[f, c] for f, c in families.items()]}
    return {"chunk_result": {"start": start, "stop": stop, "profile": columns}}


@tool("dq.detect_chunk", description="Run the row-level checks on one chunk")
def detect_chunk(state: State, ctx: ToolContext) -> State:
    """Add each row-level check's missing count and failing rows (dataset indices) to ``chunk_result``."""
    rows = current_rows(state)
    start, stop = _chunk(state, rows)
    part = rows[start:stop]
    checks: dict[str, Any] = {}
    for check in CHECKS:
        if check.test is None:
            continue
        result = run_row_check(check, part)
        checks[check.name] = {
            "missing": result.missing_count,
            "unexpected": [start + i for i in result.unexpected],
        }
    return {
        "chunk_result": {**(state.get("chunk_result") or {}), "start": start, "stop": stop, "checks": checks}
    }


@tool(
    "dq.combine", description="Join the chunks' profiles and checks into the dataset's profile and anomalies"
)
def combine(state: State, ctx: ToolContext) -> State:
    """``profile`` and ``anomalies`` of the whole dataset, and its exact duplicates for ``dq.apply_chunk``."""
    rows = current_rows(state)
    joined = _joined(state, "chunk_results", rows)
    columns: dict[str, dict[str, Any]] = {}
    for column in COLUMNS:
        nulls = 0
        families: Counter[str] = Counter()
        for _, _, result in joined:
            part = result["profile"][column]
            nulls += int(part["null_count"])
            for family, count in part["formats"]:
                families[family] += int(count)
        columns[column] = column_profile(rows, column, nulls, families)
    repeats = first_occurrences(rows)
    results: list[CheckResult] = []
    for check in CHECKS:
        if check.test is None:
            results.append(unique_result(len(rows), repeats))
            continue
        found = [result["checks"][check.name] for _, _, result in joined]
        missing = sum(int(f["missing"]) for f in found)
        unexpected = tuple(int(i) for f in found for i in f["unexpected"])
        results.append(CheckResult(check, len(rows), missing, unexpected))
    return {
        "profile": profile_value(state, rows, columns),
        "anomalies": anomalies_value(state, rows, results),
        "duplicates": [[index, first] for index, first in sorted(repeats.items())],
    }


def _duplicates(state: State, rows: int) -> dict[int, int]:
    pairs = state.get("duplicates")
    if not isinstance(pairs, list):
        raise ValueError("the state has no duplicates: dq.combine runs before dq.apply_chunk")
    repeats: dict[int, int] = {}
    for pair in pairs:
        index, first = pair if isinstance(pair, list) and len(pair) == 2 else (None, None)
        if not (isinstance(index, int) and isinstance(first, int) and _is_int(index) and _is_int(first)):
            raise ValueError(f"duplicates holds {pair!r}, not [index, earlier index]")
        if not 0 <= first < index < rows:
            raise ValueError(f"duplicates holds {pair!r}, not two rows of the dataset's {rows}")
        repeats[index] = first
    return repeats


@tool("dq.apply_chunk", description="Repair, quarantine or drop the flagged rows of one chunk")
def apply_chunk(state: State, ctx: ToolContext) -> State:
    """Apply the rules to the chunk's rows; ``chunk_result`` says which rows changed or left, and why."""
    rows = current_rows(state)
    ordered = order_rules(rule_plan(state, rows))
    start, stop = _chunk(state, rows)
    part = rows[start:stop]
    repeats = {i - start: first for i, first in _duplicates(state, len(rows)).items() if start <= i < stop}
    flagged: dict[str, set[int]] = {}
    for check in {str(rule["check"]) for rule in ordered}:
        if check == UNIQUE:
            flagged[check] = set(repeats)
        else:
            flagged[check] = set(run_row_check(CHECKS_BY_NAME[check], part).unexpected)
    iteration = int(state.get("iteration", 0)) + 1
    outcome = apply_flagged(part, ordered, flagged, repeats, rows.__getitem__, iteration)
    kept = set(outcome.kept)
    by_index = dict(zip(outcome.kept, outcome.rows, strict=True))
    return {
        "chunk_result": {
            "start": start,
            "stop": stop,
            "removed": [start + i for i in range(len(part)) if i not in kept],
            "repaired": [[start + i, by_index[i]] for i in outcome.repaired],
            "quarantined": outcome.quarantined,
            "dropped": outcome.dropped,
            "rules": [s.as_dict() for s in outcome.stats],
        }
    }


_COUNTS = ("selected", "repaired", "quarantined", "dropped")


@tool("dq.combine_fixes", description="Join the chunks' repairs into the table and what each rule did")
def combine_fixes(state: State, ctx: ToolContext) -> State:
    """The table after the rules, rows in their order, and each rule's counts summed over the chunks."""
    rows = current_rows(state)
    joined = _joined(state, "chunk_fixes", rows)
    dataset: list[Row] = []
    quarantined: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    stats: list[dict[str, Any]] | None = None
    for start, stop, result in joined:
        removed = set(result["removed"])
        repaired = {int(index): row for index, row in result["repaired"]}
        dataset.extend(repaired.get(i, rows[i]) for i in range(start, stop) if i not in removed)
        quarantined.extend(result["quarantined"])
        dropped.extend(result["dropped"])
        if stats is None:
            stats = [dict(s) for s in result["rules"]]
            continue
        if [(s["check"], s["action"]) for s in stats] != [(s["check"], s["action"]) for s in result["rules"]]:
            raise ValueError(f"chunk {start}..{stop} applied other rules than the first chunk")
        for total, part in zip(stats, result["rules"], strict=True):
            for count in _COUNTS:
                total[count] += part[count]
    return applied_update(state, dataset, quarantined, dropped, stats or [])
