"""Declarative edge conditions: data, never code.

A condition is a JSON object, one of:

* a comparison ``{"key": "a.b.0", "op": ">", "value": 2}``;
* ``{"all": [cond, ...]}``, ``{"any": [cond, ...]}``, ``{"not": cond}``.

``key`` is a dotted path into the state: each part indexes a dict by name, or a
list by a (possibly negative) integer.

Semantics that never raise:

* A **missing key** (any part of the path absent) makes every op false except
  ``not_exists``. ``!=`` is false too: "missing" is not a value that differs.
* **Values that cannot be compared** (``"a" > 2``, ``None < 1``) make the
  comparison false. ``==``/``!=`` compare by Python equality, so ``"2" == 2`` is
  false and ``"2" != 2`` is true.
* ``in``/``not_in`` need a list (or string) ``value``; ``contains`` needs a
  list, string or dict in the state; ``matches`` needs a string in the state. A
  state value of the wrong kind makes them false.

``matches`` searches with RE2 (``google-re2``), which runs in time linear in the
input: no pattern can hang a step. RE2 has no backreferences or lookaround; a
pattern it rejects, a pattern longer than :data:`engine.limits.MAX_PATTERN_LENGTH`
or a condition nested deeper than :data:`engine.limits.MAX_CONDITION_DEPTH` is a
problem :func:`check` reports, so the graph is refused when it is created.

Every evaluation returns a :class:`Verdict` whose ``reason`` says why, which the
run's log records with each edge decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import re2

from engine.limits import MAX_CONDITION_DEPTH, MAX_PATTERN_LENGTH

OPS = (
    "==",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "in",
    "not_in",
    "contains",
    "exists",
    "not_exists",
    "matches",
)
OP_ALIASES = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "=": "=="}
_UNARY = frozenset({"exists", "not_exists"})
_MISSING = object()


@dataclass(frozen=True)
class Verdict:
    """The outcome of a condition: whether it holds, why, and which state keys it read."""

    holds: bool
    reason: str
    keys: tuple[str, ...] = field(default=())


def resolve(state: Any, path: str) -> Any:
    """Return the value at a dotted ``path`` in ``state``, or the ``_MISSING`` sentinel."""
    current = state
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return _MISSING
            current = current[part]
        elif isinstance(current, list | tuple):
            try:
                index = int(part)
            except ValueError:
                return _MISSING
            if not -len(current) <= index < len(current):
                return _MISSING
            current = current[index]
        else:
            return _MISSING
    return current


def compile_pattern(pattern: str) -> Any:
    """The RE2 program of ``pattern``; ``ValueError`` with RE2's reason if it rejects it or it is too long."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"the pattern is {len(pattern)} characters; the limit is {MAX_PATTERN_LENGTH}")
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(str(reason)) from None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "==":
        return bool(actual == expected)
    if op == "!=":
        return bool(actual != expected)
    if op == ">":
        return bool(actual > expected)
    if op == ">=":
        return bool(actual >= expected)
    if op == "<":
        return bool(actual < expected)
    if op == "<=":
        return bool(actual <= expected)
    raise AssertionError(op)


def _ordering_compatible(actual: Any, expected: Any) -> bool:
    numbers = (int, float)
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool)
    if isinstance(actual, numbers) and isinstance(expected, numbers):
        return True
    return type(actual) is type(expected) and isinstance(actual, str | list | tuple)


def _evaluate_comparison(key: str, op: str, expected: Any, state: Any) -> Verdict:
    actual = resolve(state, key)
    keys = (key,)
    if op == "exists":
        return Verdict(
            actual is not _MISSING,
            f"{key} {'exists' if actual is not _MISSING else 'is missing'}",
            keys,
        )
    if op == "not_exists":
        return Verdict(actual is _MISSING, f"{key} {'is missing' if actual is _MISSING else 'exists'}", keys)
    if actual is _MISSING:
        return Verdict(False, f"{key} is missing", keys)
    shown = f"{key}={_short(actual)}"
    if op in ("==", "!="):
        holds = _compare(op, actual, expected)
        return Verdict(holds, f"{shown} {op} {_short(expected)} is {str(holds).lower()}", keys)
    if op in (">", ">=", "<", "<="):
        if not _ordering_compatible(actual, expected):
            return Verdict(
                False,
                f"{shown} cannot be compared with {_short(expected)} "
                f"({type(actual).__name__} {op} {type(expected).__name__})",
                keys,
            )
        holds = _compare(op, actual, expected)
        return Verdict(holds, f"{shown} {op} {_short(expected)} is {str(holds).lower()}", keys)
    if op in ("in", "not_in"):
        if not isinstance(expected, list | tuple | str):
            return Verdict(False, f"{op} needs a list or string value, got {type(expected).__name__}", keys)
        if isinstance(expected, str) and not isinstance(actual, str):
            return Verdict(False, f"{shown} is not a string, cannot test {op} a string", keys)
        try:
            inside = actual in expected
        except TypeError:
            return Verdict(False, f"{shown} cannot be tested {op} {_short(expected)}", keys)
        holds = inside if op == "in" else not inside
        return Verdict(holds, f"{shown} {op} {_short(expected)} is {str(holds).lower()}", keys)
    if op == "contains":
        if not isinstance(actual, list | tuple | str | Mapping):
            return Verdict(False, f"{shown} is a {type(actual).__name__}, which cannot contain values", keys)
        try:
            holds = expected in actual
        except TypeError:
            return Verdict(False, f"{shown} cannot contain {_short(expected)}", keys)
        return Verdict(holds, f"{shown} contains {_short(expected)} is {str(holds).lower()}", keys)
    if op == "matches":
        if not isinstance(actual, str):
            return Verdict(False, f"{shown} is not a string, cannot match a pattern", keys)
        holds = compile_pattern(str(expected)).search(actual) is not None
        return Verdict(holds, f"{shown} matches {_short(expected)} is {str(holds).lower()}", keys)
    raise AssertionError(op)


def normalise_op(op: Any) -> str | None:
    """Return the canonical operator for ``op`` (aliases accepted), or ``None`` if unknown."""
    if not isinstance(op, str):
        return None
    op = OP_ALIASES.get(op, op)
    return op if op in OPS else None


def check(condition: Any, where: str = "condition", depth: int = 1) -> list[str]:
    """Return every problem with a condition's shape; an empty list means it is well formed."""
    problems: list[str] = []
    if depth > MAX_CONDITION_DEPTH:
        return [f"{where} nests conditions more than {MAX_CONDITION_DEPTH} deep"]
    if not isinstance(condition, Mapping):
        return [f"{where} must be an object, got {type(condition).__name__}"]
    combinators = [name for name in ("all", "any", "not") if name in condition]
    if combinators:
        if len(condition) != 1:
            return [
                f"{where} mixes {combinators[0]!r} with other fields {sorted(set(condition) - {combinators[0]})}"
            ]
        name = combinators[0]
        inner = condition[name]
        if name == "not":
            return check(inner, f"{where}.not", depth + 1)
        if not isinstance(inner, list) or not inner:
            return [f"{where}.{name} must be a non-empty list of conditions"]
        for i, sub in enumerate(inner):
            problems.extend(check(sub, f"{where}.{name}[{i}]", depth + 1))
        return problems
    unknown = set(condition) - {"key", "op", "value"}
    if unknown:
        problems.append(f"{where} has unknown fields {sorted(unknown)}")
    key = condition.get("key")
    if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
        problems.append(f"{where} needs a 'key' that is a dotted path such as 'stats.count', got {key!r}")
    op = normalise_op(condition.get("op"))
    if op is None:
        problems.append(f"{where} has unknown operator {condition.get('op')!r}; known: {', '.join(OPS)}")
        return problems
    if op not in _UNARY and "value" not in condition:
        problems.append(f"{where} with op {op!r} needs a 'value'")
    value = condition.get("value")
    if op in ("in", "not_in") and "value" in condition and not isinstance(value, list | str):
        problems.append(f"{where} with op {op!r} needs a list or string 'value'")
    if op == "matches":
        if not isinstance(value, str):
            problems.append(f"{where} with op 'matches' needs a regular expression string 'value'")
        else:
            try:
                compile_pattern(value)
            except ValueError as exc:
                problems.append(f"{where} has an invalid regular expression {_short(value)} (RE2): {exc}")
    return problems


Evaluator = Callable[[Any], Verdict]


def compile_condition(condition: Mapping[str, Any]) -> Evaluator:
    """Turn a well-formed condition (see :func:`check`) into a function of the state."""
    if "all" in condition:
        parts = [compile_condition(c) for c in condition["all"]]

        def all_of(state: Any) -> Verdict:
            seen: list[Verdict] = []
            for part in parts:
                verdict = part(state)
                seen.append(verdict)
                if not verdict.holds:
                    return Verdict(False, f"all: {verdict.reason}", _keys(seen))
            return Verdict(True, "all: " + "; ".join(v.reason for v in seen), _keys(seen))

        return all_of
    if "any" in condition:
        parts = [compile_condition(c) for c in condition["any"]]

        def any_of(state: Any) -> Verdict:
            seen: list[Verdict] = []
            for part in parts:
                verdict = part(state)
                seen.append(verdict)
                if verdict.holds:
                    return Verdict(True, f"any: {verdict.reason}", _keys(seen))
            return Verdict(False, "any: " + "; ".join(v.reason for v in seen), _keys(seen))

        return any_of
    if "not" in condition:
        inner = compile_condition(condition["not"])

        def not_of(state: Any) -> Verdict:
            verdict = inner(state)
            return Verdict(not verdict.holds, f"not ({verdict.reason})", verdict.keys)

        return not_of
    key = str(condition["key"])
    op = normalise_op(condition["op"])
    if op is None:
        raise ValueError(f"unknown operator {condition['op']!r}")
    expected = condition.get("value")
    if op == "matches":
        pattern = compile_pattern(str(expected))

        def matches(state: Any) -> Verdict:
            actual = resolve(state, key)
            if actual is _MISSING:
                return Verdict(False, f"{key} is missing", (key,))
            if not isinstance(actual, str):
                return Verdict(
                    False, f"{key}={_short(actual)} is not a string, cannot match a pattern", (key,)
                )
            holds = pattern.search(actual) is not None
            return Verdict(
                holds,
                f"{key}={_short(actual)} matches {expected!r} is {str(holds).lower()}",
                (key,),
            )

        return matches

    def comparison(state: Any) -> Verdict:
        return _evaluate_comparison(key, op, expected, state)

    return comparison


def _keys(verdicts: list[Verdict]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for v in verdicts for k in v.keys))


def evaluate(condition: Mapping[str, Any], state: Any) -> Verdict:
    """Evaluate a condition against ``state``; a malformed condition gives a false verdict, never an exception."""
    problems = check(condition)
    if problems:
        return Verdict(False, "malformed condition: " + "; ".join(problems))
    return compile_condition(condition)(state)
