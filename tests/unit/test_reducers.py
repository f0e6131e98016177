"""Merging branch updates at a join: reducers, conflicts, item collection; examples and properties."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.reducers import MergeConflict, ReducerError, collect_items, merge_branches

REDUCERS = ["append", "extend", "merge", "sum", "max", "min", "last"]

json_scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
keys = st.sampled_from(["a", "b", "c", "d"])
branch_updates = st.lists(st.dictionaries(keys, json_values, max_size=4), max_size=5)


def named(updates: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"b{i}", u) for i, u in enumerate(updates)]


def test_one_writer_per_key_takes_its_value() -> None:
    out = merge_branches({"x": 1}, [("a", {"x": 2, "y": [1]}), ("b", {"z": "s"})], {})
    assert out == {"x": 2, "y": [1], "z": "s"}
    assert list(out) == ["x", "y", "z"]


def test_two_writers_without_a_reducer_conflict() -> None:
    with pytest.raises(MergeConflict) as caught:
        merge_branches({}, [("a", {"k": 1}), ("b", {"other": 1}), ("c", {"k": 1})], {})
    assert caught.value.key == "k"
    assert caught.value.branches == ["a", "c"]
    message = str(caught.value)
    assert "'k'" in message and "'a'" in message and "'c'" in message and "'b'" not in message


def test_excluded_keys_are_skipped() -> None:
    out = merge_branches(
        {}, [("a", {"item": 1, "x": 1}), ("b", {"item": 2})], {}, exclude=frozenset({"item"})
    )
    assert out == {"x": 1}


@pytest.mark.parametrize(
    ("reducer", "base", "values", "expected"),
    [
        ("append", None, [1, [2]], [1, [2]]),
        ("append", [0], [1, 2], [0, 1, 2]),
        ("extend", None, [[1], [2, 3]], [1, 2, 3]),
        ("extend", ["x"], [[], ["y"]], ["x", "y"]),
        ("merge", None, [{"a": 1}, {"a": 2, "b": 3}], {"a": 2, "b": 3}),
        ("merge", {"z": 0, "a": 0}, [{"a": 1}], {"z": 0, "a": 1}),
        ("sum", None, [1, 2.5], 3.5),
        ("sum", 10, [1, 2], 13),
        ("max", None, [3, 7, 5], 7),
        ("max", 9, [3, 7], 9),
        ("max", None, ["apple", "pear"], "pear"),
        ("min", None, [3, 1.5, 5], 1.5),
        ("min", 0, [3], 0),
        ("last", None, [1, "two", None], None),
        ("last", "old", [{"a": 1}], {"a": 1}),
    ],
)
def test_reducers_fold_in_branch_order_from_the_base(
    reducer: str, base: Any, values: list[Any], expected: Any
) -> None:
    state = {} if base is None else {"k": base}
    branches = [(f"b{i}", {"k": v}) for i, v in enumerate(values)]
    assert merge_branches(state, branches, {"k": reducer}) == {"k": expected}


def test_inputs_are_not_changed() -> None:
    base = {"k": [1], "m": {"a": 1}}
    first, second = {"k": [2], "m": {"b": 2}}, {"k": [3], "m": {"c": 3}}
    merge_branches(base, [("a", first), ("b", second)], {"k": "extend", "m": "merge"})
    assert base == {"k": [1], "m": {"a": 1}}
    assert first == {"k": [2], "m": {"b": 2}} and second == {"k": [3], "m": {"c": 3}}


@pytest.mark.parametrize(
    ("reducer", "base", "values", "branch", "fragment"),
    [
        ("extend", None, [[1], 2], "b1", "needs lists, got a list and a number"),
        ("extend", "text", [[1]], "b0", "needs lists, got a string and a list"),
        ("append", {"a": 1}, [1], "b0", "needs a list to append to, got an object"),
        ("merge", None, [{"a": 1}, [1]], "b1", "needs objects, got an object and a list"),
        ("sum", None, [1, True], "b1", "needs numbers, got a number and a boolean"),
        ("sum", None, ["1"], "b0", "needs numbers, got a number and a string"),
        ("sum", [1], [1], "b0", "needs numbers, got a list and a number"),
        ("max", None, [1, "a"], "b1", "needs two numbers or two strings, got a number and a string"),
        ("min", None, [None], "b0", "needs a number or a string, got null"),
        ("max", None, [[1], [2]], "b0", "needs a number or a string, got a list"),
        ("min", None, [False, 0], "b0", "needs a number or a string, got a boolean"),
    ],
)
def test_reducer_errors_name_key_reducer_and_branch(
    reducer: str, base: Any, values: list[Any], branch: str, fragment: str
) -> None:
    state = {} if base is None else {"k": base}
    with pytest.raises(ReducerError) as caught:
        merge_branches(state, [(f"b{i}", {"k": v}) for i, v in enumerate(values)], {"k": reducer})
    error = caught.value
    assert (error.key, error.reducer, error.branch) == ("k", reducer, branch)
    assert fragment in error.message
    assert f"'{reducer}'" in str(error) and "'k'" in str(error) and f"'{branch}'" in str(error)


def test_collect_items_keeps_item_order_and_fills_gaps_with_none() -> None:
    items = [{"score": 0.5, "fixes": 1}, {"fixes": 2}, {"score": 0.9}]
    assert collect_items(items, {"score": "scores", "fixes": "all_fixes"}) == {
        "scores": [0.5, None, 0.9],
        "all_fixes": [1, 2, None],
    }
    assert collect_items([], {"score": "scores"}) == {"scores": []}
    assert collect_items(items, {}) == {}


# Properties


@given(branch_updates, st.dictionaries(keys, json_values, max_size=4))
def test_without_reducers_a_conflict_is_raised_exactly_when_two_branches_write_a_key(
    updates: list[dict[str, Any]], base: dict[str, Any]
) -> None:
    writers = {k: [f"b{i}" for i, u in enumerate(updates) if k in u] for k in "abcd"}
    shared = [k for k, ws in writers.items() if len(ws) > 1]
    try:
        out = merge_branches(base, named(updates), {})
    except MergeConflict as exc:
        assert exc.key in shared
        assert exc.branches == writers[exc.key]
    else:
        assert not shared
        assert out == {k: v for u in updates for k, v in u.items()}


@given(st.lists(json_values, min_size=1, max_size=6), st.none() | st.lists(json_values, max_size=3))
def test_append_and_last_follow_branch_order(values: list[Any], base: list[Any] | None) -> None:
    state = {} if base is None else {"k": base}
    branches = [(f"b{i}", {"k": v}) for i, v in enumerate(values)]
    assert merge_branches(state, branches, {"k": "append"}) == {"k": [*(base or []), *values]}
    assert merge_branches(state, branches, {"k": "last"}) == {"k": values[-1]}


@given(st.lists(st.lists(json_values, max_size=3), min_size=1, max_size=6))
def test_extend_concatenates_in_branch_order(values: list[list[Any]]) -> None:
    branches = [(f"b{i}", {"k": v}) for i, v in enumerate(values)]
    assert merge_branches({}, branches, {"k": "extend"}) == {"k": list(itertools.chain(*values))}


@given(st.lists(st.dictionaries(st.text(max_size=2), json_values, max_size=3), min_size=1, max_size=5))
def test_merge_lets_later_branches_win(values: list[dict[str, Any]]) -> None:
    expected: dict[str, Any] = {}
    for value in values:
        expected.update(value)
    assert merge_branches({}, [(f"b{i}", {"k": v}) for i, v in enumerate(values)], {"k": "merge"}) == {
        "k": expected
    }


@given(json_values.filter(lambda v: v is not None), st.sampled_from(REDUCERS))
def test_one_branch_on_an_empty_base_gives_its_value_through_the_identity(value: Any, reducer: str) -> None:
    fits = {
        "append": True,
        "extend": isinstance(value, list),
        "merge": isinstance(value, dict),
        "sum": isinstance(value, int) and not isinstance(value, bool),
        "max": isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)),
        "min": isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)),
        "last": True,
    }[reducer]
    if not fits:
        with pytest.raises(ReducerError):
            merge_branches({}, [("only", {"k": value})], {"k": reducer})
        return
    expected = [value] if reducer == "append" else value
    assert merge_branches({}, [("only", {"k": value})], {"k": reducer}) == {"k": expected}


numbers = st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6, allow_nan=False)


@given(
    st.sampled_from(["sum", "max", "min"]),
    st.lists(st.integers(-(10**9), 10**9), min_size=2, max_size=8),
    st.none() | st.integers(-(10**9), 10**9),
    st.data(),
)
def test_sum_max_min_are_associative_and_order_free(
    reducer: str, values: list[int], base: int | None, data: st.DataObject
) -> None:
    state = {} if base is None else {"k": base}
    branches = [(f"b{i}", {"k": v}) for i, v in enumerate(values)]
    whole = merge_branches(state, branches, {"k": reducer})
    cut = data.draw(st.integers(1, len(values) - 1))
    first = merge_branches(state, branches[:cut], {"k": reducer})
    assert merge_branches(first, branches[cut:], {"k": reducer}) == whole
    shuffled = data.draw(st.permutations(branches))
    assert merge_branches(state, shuffled, {"k": reducer}) == whole
    expected = {"sum": sum, "max": max, "min": min}[reducer]([*([] if base is None else [base]), *values])
    assert whole == {"k": expected}


@given(st.lists(numbers, min_size=1, max_size=8), st.sampled_from(["max", "min"]))
def test_max_and_min_pick_an_extreme_of_mixed_ints_and_floats(values: list[float], reducer: str) -> None:
    out = merge_branches({}, [(f"b{i}", {"k": v}) for i, v in enumerate(values)], {"k": reducer})
    assert out == {"k": max(values) if reducer == "max" else min(values)}


@given(
    st.lists(st.dictionaries(st.sampled_from(["s", "x", "y"]), st.integers(0, 9), max_size=3), max_size=8),
    st.dictionaries(st.sampled_from(["s", "x", "y"]), st.sampled_from(["l1", "l2", "l3"]), max_size=3),
)
def test_collect_items_has_one_entry_per_item_in_order(
    items: list[dict[str, Any]], collect: dict[str, str]
) -> None:
    out = collect_items(items, collect)
    assert set(out) == set(collect.values())
    for source, target in collect.items():
        if list(collect.values()).count(target) == 1:
            assert out[target] == [item.get(source) for item in items]
        assert len(out[target]) == len(items)
