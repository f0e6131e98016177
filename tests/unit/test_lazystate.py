"""LazyState loads a value on first read, and every way of reading all values loads them first."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

from engine.lazystate import LazyState, json_size
from engine.limits import MAX_STATE_KEYS, state_problem, state_problem_after

STORED = {"a": 1, "b": {"x": [1, 2]}, "c": "text"}


def lazy(loads: list[list[str]], stored: dict[str, Any] | None = None) -> LazyState:
    values = stored if stored is not None else STORED

    def load(keys: list[str]) -> dict[str, Any]:
        loads.append(sorted(keys))
        return {k: json.loads(json.dumps(values[k])) for k in keys}

    return LazyState(values, load, {k: json_size(v) for k, v in values.items()})


def test_keys_length_and_membership_load_nothing() -> None:
    loads: list[list[str]] = []
    state = lazy(loads)
    assert sorted(state) == ["a", "b", "c"]
    assert len(state) == 3 and "b" in state and "z" not in state
    assert list(state.keys()) == ["a", "b", "c"]
    assert loads == []


def test_a_read_loads_that_key_once() -> None:
    loads: list[list[str]] = []
    state = lazy(loads)
    assert state["b"] == {"x": [1, 2]}
    assert state.get("b") is state["b"]
    assert state.get("z", 7) == 7
    assert loads == [["b"]]


def test_reading_everything_loads_the_rest_in_one_call() -> None:
    for read in (
        lambda s: json.loads(json.dumps(s)),
        lambda s: dict(s.items()),
        lambda s: {k: v for k, v in zip(s.keys(), s.values(), strict=True)},
        copy.deepcopy,
        lambda s: pickle.loads(pickle.dumps(s)),
    ):
        loads: list[list[str]] = []
        state = lazy(loads)
        state["a"]
        assert read(state) == STORED
        assert loads == [["a"], ["b", "c"]]


def test_merging_into_a_dict_loads_key_by_key() -> None:
    loads: list[list[str]] = []
    assert dict(lazy(loads)) == STORED
    assert {**lazy(loads)} == STORED
    assert sorted(loads) == [["a"], ["a"], ["b"], ["b"], ["c"], ["c"]]


def test_equality_and_repr_compare_values() -> None:
    loads: list[list[str]] = []
    assert lazy(loads) == STORED
    assert lazy(loads) == STORED
    assert lazy(loads) != {**STORED, "a": 2}
    assert lazy(loads) == lazy(loads)
    assert repr(lazy(loads)) == repr(STORED)


def test_a_copy_and_a_merge_stay_lazy() -> None:
    loads: list[list[str]] = []
    state = lazy(loads)
    merged = state | {"a": 5}
    copied = state.copy()
    assert loads == []
    assert merged["a"] == 5 and copied["c"] == "text"
    assert loads == [["c"]]
    assert "c" in state.unloaded()


def test_changing_a_loaded_value_in_place_is_local_to_the_state() -> None:
    loads: list[list[str]] = []
    state = lazy(loads)
    state["b"]["x"].append(3)
    assert lazy(loads)["b"] == {"x": [1, 2]}


def test_json_sizes_come_from_the_store_until_a_value_is_replaced() -> None:
    loads: list[list[str]] = []
    state = lazy(loads, {"a": 1, "big": "x" * 1000})
    state["a"] = "longer"
    assert state.json_sizes() == {"a": len('"longer"'), "big": 1002}
    assert loads == []


def test_the_size_check_of_a_sized_state_matches_the_whole_check() -> None:
    loads: list[list[str]] = []
    stored = {"a": "x" * 100, "b": {"n": [1, 2, 3]}, "ü": "ä"}
    state = lazy(loads, stored)
    updates = {"a": "y", "new": [1, {"k": "v"}]}
    assert state_problem_after(state, updates, "s") is None
    assert loads == []

    from engine import limits

    whole = {**stored, **updates}
    compact = len(json.dumps(whole, separators=(",", ":"), ensure_ascii=False).encode())
    original = limits.MAX_STATE_BYTES
    try:
        limits.MAX_STATE_BYTES = compact - 1
        found = state_problem_after(state, updates, "s")
        assert found is not None and found[1] >= compact
    finally:
        limits.MAX_STATE_BYTES = original
    assert state_problem(whole, "s") is None


def test_the_size_check_counts_keys_and_checks_only_new_ones() -> None:
    loads: list[list[str]] = []
    state = lazy(loads, {f"k{i}": i for i in range(MAX_STATE_KEYS)})
    found = state_problem_after(state, {"one more": 1}, "s")
    assert found is not None and "top-level keys" in found[0]
    assert state_problem_after(state, {"k0": 2}, "s") is None
    found = state_problem_after(lazy(loads), {"": 1}, "s")
    assert found is not None and "empty" in found[0]
    assert loads == []
