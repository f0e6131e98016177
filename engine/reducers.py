"""How the writes of parallel branches (or map items) combine at their join. Pure: no I/O, no clock.

A branch returns partial updates of the state. At the join each key that some
branch wrote gets one value: a key with a reducer (``Graph.reducers``) folds the
branches' values in branch order, starting from the state's value as of the
fan-out if it has one; a key without one takes the value of its only writer, and
two or more writers are a :class:`MergeConflict` rather than a silent overwrite.

======== ======================= ================================================
reducer  identity (no base)      one step, ``acc`` then the branch's value ``v``
======== ======================= ================================================
append   ``[]``                  ``acc + [v]``
extend   ``[]``                  ``acc + v`` (``v`` a list)
merge    ``{}``                  ``{**acc, **v}`` (``v`` an object)
sum      ``0``                   ``acc + v`` (numbers, not booleans)
max      the first value         the larger (numbers, or strings)
min      the first value         the smaller (numbers, or strings)
last     the first value         ``v``
======== ======================= ================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_MISSING: Any = object()


class MergeConflict(Exception):
    """Two or more branches wrote ``key``, which has no reducer; ``branches`` names them in branch order."""

    def __init__(self, key: str, branches: list[str]) -> None:
        self.key = key
        self.branches = branches
        names = ", ".join(repr(b) for b in branches)
        super().__init__(
            f"branches {names} all wrote state key {key!r}, which has no reducer: give it one in the "
            "graph's reducers (append, extend, merge, sum, max, min, last) or let one branch write it"
        )


class ReducerError(Exception):
    """The ``reducer`` of ``key`` cannot take the value ``branch`` wrote (or the value it is added to)."""

    def __init__(self, key: str, reducer: str, branch: str, message: str) -> None:
        self.key = key
        self.reducer = reducer
        self.branch = branch
        self.message = message
        super().__init__(f"reducer {reducer!r} of state key {key!r}, at branch {branch!r}: {message}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _need(ok: bool, what: str, acc: Any, value: Any) -> None:
    if not ok:
        raise ValueError(f"needs {what}, got {_kind(acc)} and {_kind(value)}")


def _append(acc: Any, value: Any) -> Any:
    _need(isinstance(acc, list), "a list to append to", acc, value)
    return [*acc, value]


def _extend(acc: Any, value: Any) -> Any:
    _need(isinstance(acc, list) and isinstance(value, list), "lists", acc, value)
    return [*acc, *value]


def _merge(acc: Any, value: Any) -> Any:
    _need(isinstance(acc, dict) and isinstance(value, dict), "objects", acc, value)
    return {**acc, **value}


def _sum(acc: Any, value: Any) -> Any:
    _need(_is_number(acc) and _is_number(value), "numbers", acc, value)
    return acc + value


def _comparable(acc: Any, value: Any) -> None:
    both_numbers = _is_number(acc) and _is_number(value)
    both_strings = isinstance(acc, str) and isinstance(value, str)
    _need(both_numbers or both_strings, "two numbers or two strings", acc, value)


def _max(acc: Any, value: Any) -> Any:
    _comparable(acc, value)
    return value if value > acc else acc


def _min(acc: Any, value: Any) -> Any:
    _comparable(acc, value)
    return value if value < acc else acc


def _last(acc: Any, value: Any) -> Any:
    return value


_STEPS: dict[str, Callable[[Any, Any], Any]] = {
    "append": _append,
    "extend": _extend,
    "merge": _merge,
    "sum": _sum,
    "max": _max,
    "min": _min,
    "last": _last,
}
_IDENTITY: dict[str, Callable[[], Any]] = {"append": list, "extend": list, "merge": dict, "sum": lambda: 0}


def _fold(key: str, reducer: str, start: Any, writes: list[tuple[str, Any]]) -> Any:
    """Fold ``writes`` (``(branch, value)`` in branch order) into ``start``; ``_MISSING`` means the identity."""
    step = _STEPS[reducer]
    rest = writes
    acc = start
    if acc is _MISSING:
        if reducer in _IDENTITY:
            acc = _IDENTITY[reducer]()
        else:
            branch, acc = writes[0]
            rest = writes[1:]
            if reducer in ("max", "min") and not (_is_number(acc) or isinstance(acc, str)):
                raise ReducerError(key, reducer, branch, f"needs a number or a string, got {_kind(acc)}")
    for branch, value in rest:
        try:
            acc = step(acc, value)
        except ValueError as exc:
            raise ReducerError(key, reducer, branch, str(exc)) from None
    return acc


def merge_branches(
    base: Mapping[str, Any],
    branches: list[tuple[str, dict[str, Any]]],
    reducers: Mapping[str, str],
    exclude: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The updates the join applies: one value per key some branch wrote (keys in ``exclude`` skipped).

    ``branches`` is ``(branch name, its updates)`` in branch order; ``base`` is the
    state as of the fan-out. Keys come out in the order branches first wrote them.
    Raises :class:`MergeConflict` for a key without a reducer written by two or more
    branches (the first such key), :class:`ReducerError` for a value its reducer
    cannot take.
    """
    writes: dict[str, list[tuple[str, Any]]] = {}
    for branch, updates in branches:
        for key, value in updates.items():
            if key not in exclude:
                writes.setdefault(key, []).append((branch, value))
    out: dict[str, Any] = {}
    for key, written in writes.items():
        reducer = reducers.get(key)
        if reducer is None:
            if len(written) > 1:
                raise MergeConflict(key, [branch for branch, _ in written])
            out[key] = written[0][1]
            continue
        out[key] = _fold(key, reducer, base.get(key, _MISSING), written)
    return out


def collect_items(items: list[dict[str, Any]], collect: Mapping[str, str]) -> dict[str, list[Any]]:
    """For each ``branch key -> list key`` of ``collect``: the items' values of the branch key, in item order.

    ``items`` holds each item's updates in item order; an item that did not write
    the branch key contributes ``None``.
    """
    return {target: [item.get(source) for item in items] for source, target in collect.items()}
