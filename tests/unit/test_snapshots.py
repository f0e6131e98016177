"""StateView: a state that copies a snapshot value when it is read, so the snapshot never changes."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from engine.model import Run
from engine.snapshots import StateView, fresh


def snapshot() -> dict[str, Any]:
    return {"rows": [{"id": 1}], "meta": {"tags": ["a"]}, "n": 1, "s": "text"}


def scribble_rows(value: Any) -> None:
    value.append("scribbled")


def _keywords(**values: Any) -> dict[str, Any]:
    return values


def _updated(view: StateView) -> dict[str, Any]:
    target: dict[str, Any] = {}
    target.update(view)
    return target


def _popitem_rows(view: StateView) -> Any:
    while True:
        key, value = view.popitem()
        if key == "rows":
            return value


def _run(view: StateView) -> Run:
    base = Run(run_id="r", graph_id="g", graph_version=1, created_at=1.0, updated_at=1.0)
    return base.model_copy(update={"state": view})


READERS: dict[str, Callable[[StateView], Any]] = {
    "getitem": lambda view: view["rows"],
    "get": lambda view: view.get("rows"),
    "pop": lambda view: view.pop("rows"),
    "setdefault": lambda view: view.setdefault("rows", []),
    "items": lambda view: dict(view.items())["rows"],
    "values": lambda view: next(iter(view.values())),
    "dict": lambda view: dict(view)["rows"],
    "unpacking": lambda view: {**view}["rows"],
    "update": lambda view: _updated(view)["rows"],
    "or": lambda view: (view | {"n": 2})["rows"],
    "ror": lambda view: ({"n": 2} | view)["rows"],
    "copy": lambda view: view.copy()["rows"],
    "copy.copy": lambda view: copy.copy(view)["rows"],
    "deepcopy": lambda view: copy.deepcopy(view)["rows"],
    "pickle": lambda view: pickle.loads(pickle.dumps(view))["rows"],
    "popitem": _popitem_rows,
    "kwargs": lambda view: _keywords(**view)["rows"],
    "pydantic": lambda view: _run(view).model_dump()["state"]["rows"],
}


@pytest.mark.parametrize("read", READERS.values(), ids=READERS.keys())
def test_no_way_of_reading_a_value_hands_out_the_snapshot(read: Callable[[StateView], Any]) -> None:
    shared = snapshot()
    rows = read(StateView(shared))
    scribble_rows(rows)
    assert shared == snapshot()


def test_a_value_is_copied_once_and_then_stays_the_readers() -> None:
    shared = snapshot()
    view = StateView(shared)
    first = view["rows"]
    assert first is not shared["rows"]
    assert view["rows"] is first
    first.append("mine")
    assert view["rows"] == [{"id": 1}, "mine"]
    assert shared == snapshot()


def test_values_a_reader_sets_are_not_copied() -> None:
    view = StateView(snapshot())
    mine = [1, 2]
    view["rows"] = mine
    view.update(meta=mine)
    assert view["rows"] is mine
    assert view["meta"] is mine


def test_views_of_one_snapshot_are_independent() -> None:
    shared = snapshot()
    first, second = StateView(shared), StateView(shared)
    first["meta"]["tags"].append("first")
    first["n"] = 5
    assert second == snapshot()
    assert first["meta"] == {"tags": ["a", "first"]}


def test_a_copy_shares_what_the_view_already_holds_like_dict_copy() -> None:
    view = StateView(snapshot())
    view["meta"]["tags"].append("before")
    duplicate = view.copy()
    assert duplicate["meta"] is view["meta"]
    duplicate["n"] = 2
    assert view["n"] == 1
    assert isinstance(duplicate, StateView)


def test_it_compares_prints_and_serializes_as_the_dict_it_holds() -> None:
    shared = snapshot()
    view = StateView(shared)
    assert view == shared
    assert repr(view) == repr(shared)
    assert json.loads(json.dumps(view)) == shared
    assert json.loads(_run(view).model_dump_json())["state"] == shared
    assert "rows" in view and len(view) == 4 and list(view) == list(shared)
    assert view.get("missing", "default") == "default"


def test_fresh_copies_nested_json_and_deep_copies_anything_else() -> None:
    value = {"a": [{"b": [1]}], "t": (1, [2])}
    copied = fresh(value)
    assert copied == value
    assert copied["a"][0]["b"] is not value["a"][0]["b"]
    assert copied["t"][1] is not value["t"][1]
