"""The parallel Data Quality Pipeline (``engine/graphs/data_quality_parallel.json``) against the sequential one.

Two ways: the graph run by the engine's map fan-out on the in-process driver,
and its chunk tools run by hand the way the map runs them (each branch sees the
state as of the fan-out plus ``chunk`` and ``chunk_index`` and writes only
``chunk_result``; the join sees the list of every branch's ``chunk_result`` in
chunk order; every update goes through JSON as a store keeps it). Both are
compared with the sequential graph run on the in-process driver.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from engine import FakeClock, InProcessDriver, RunStatus, ToolContext
from engine.graphs import load_graph_json
from engine.registry import REGISTRY
from engine.tools.dq.checks import row_key
from engine.tools.dq.parallel import DEFAULT_CHUNKS, MAX_CHUNKS
from engine.tools.dq.stages import MAX_ITERATIONS_CAP

State = dict[str, Any]

SEQUENTIAL_KEYS = ("report", "table", "history", "profile", "anomalies", "rules", "applied", "quality_score")


def _call(name: str, state: State) -> State:
    ctx = ToolContext(run_id="r1", graph_id="g1", node=name, step=0, attempt=1)
    before = copy.deepcopy(state)
    update = REGISTRY.get(f"dq.{name}").func(state, ctx)
    assert isinstance(update, dict)
    assert state == before, f"dq.{name} changed the state it was given"
    stored: State = json.loads(json.dumps(update))
    return stored


def _map(state: State, start: list[str]) -> list[State]:
    """One map edge over ``state["chunks"]``: each branch runs ``start`` in order; their ``chunk_result``s."""
    collected = []
    for index, chunk in enumerate(state["chunks"]):
        branch = {**state, "chunk": chunk, "chunk_index": index}
        for name in start:
            update = _call(name, branch)
            assert set(update) == {"chunk_result"}, f"dq.{name} wrote {set(update)} in a branch"
            branch |= update
        collected.append(branch["chunk_result"])
    return collected


def _loops(state: State) -> bool:
    return bool(state["anomaly_count"] > 0 and not state["target_met"] and state["can_iterate"])


def parallel_run(initial: State) -> State:
    """The parallel graph, step by step: its final state."""
    state = dict(initial)
    state |= _call("initialize", state)
    while True:
        state |= _call("split", state)
        state["chunk_results"] = _map(state, ["profile_chunk", "detect_chunk"])
        state |= _call("combine", state)
        state |= _call("generate_rules", state)
        state["chunk_fixes"] = _map(state, ["apply_chunk"])
        state |= _call("combine_fixes", state)
        state |= _call("evaluate", state)
        if not _loops(state):
            break
    state |= _call("report", state)
    return state


def driver_run(graph: str, initial: State) -> State:
    clock = FakeClock()
    driver = InProcessDriver(REGISTRY, clock=clock, sleep=clock.sleep)
    graph_id = driver.service.create_graph(load_graph_json(graph)).graph_id
    run = driver.run(graph_id, initial)
    assert run.status is RunStatus.SUCCEEDED, run.error
    return run.state


def sequential_run(initial: State) -> State:
    return driver_run("data_quality", initial)


@pytest.mark.parametrize("chunks", [1, 4, 10])
@pytest.mark.parametrize(("records", "seed"), [(1000, 42), (600, 123), (37, 5)])
def test_the_engine_runs_the_parallel_graph_to_the_sequential_report(
    records: int, seed: int, chunks: int
) -> None:
    settings = {"records": records, "seed": seed}
    sequential = sequential_run(settings)
    parallel = driver_run("data_quality_parallel", {**settings, "chunks_count": chunks})
    for key in SEQUENTIAL_KEYS:
        assert parallel[key] == sequential[key], key
    assert len(parallel["chunk_results"]) == len(parallel["chunk_fixes"]) == len(parallel["chunks"])


@pytest.mark.parametrize("chunks", [1, 4, 10])
@pytest.mark.parametrize(("records", "seed"), [(1000, 42), (1000, 7), (600, 123), (300, 42), (37, 5), (3, 1)])
def test_the_parallel_pipeline_reports_what_the_sequential_one_does(
    records: int, seed: int, chunks: int
) -> None:
    settings = {"records": records, "seed": seed}
    sequential = sequential_run(settings)
    parallel = parallel_run({**settings, "chunks_count": chunks})
    for key in SEQUENTIAL_KEYS:
        assert parallel[key] == sequential[key], key
    assert len(parallel["chunks"]) == min(chunks, len(parallel["table"]["dataset"]))


@pytest.mark.parametrize("settings", [{"max_iterations": 1}, {"target_score": 0.9}, {"target_score": 1.0}])
@pytest.mark.parametrize("chunks", [1, 4, 10])
def test_the_loop_ends_as_the_sequential_one_does(settings: State, chunks: int) -> None:
    base = {"records": 500, "seed": 11, **settings}
    sequential = sequential_run(base)
    parallel = parallel_run({**base, "chunks_count": chunks})
    assert parallel["report"] == sequential["report"]
    assert parallel["iteration"] == sequential["iteration"]


def test_the_runs_compared_loop_and_fix_across_chunk_borders() -> None:
    state = parallel_run({"records": 1000, "seed": 42, "chunks_count": 10})
    assert state["iteration"] >= 2
    assert state["report"]["quality"]["dropped_duplicate_count"] > 0
    first_repeats = _call("combine", {**_first_fan_out(1000, 42, 10)})["duplicates"]
    chunk_of = {i: i // 100 for i in range(1000)}
    assert any(chunk_of[i] != chunk_of[first] for i, first in first_repeats), "a copy in another chunk"


def _first_fan_out(records: int, seed: int, chunks: int) -> State:
    state: State = {"records": records, "seed": seed, "chunks_count": chunks}
    state |= _call("initialize", state)
    state |= _call("split", state)
    state["chunk_results"] = _map(state, ["profile_chunk", "detect_chunk"])
    return state


def _row(customer_id: str, **values: Any) -> State:
    base = {
        "customer_id": customer_id,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "age": 36,
        "income": 50_000,
        "country": "GB",
        "phone": "+442079460958",
    }
    return {**base, **values}


def test_an_exact_copy_in_a_later_chunk_is_dropped_and_its_first_occurrence_stays() -> None:
    rows = [_row("C1"), _row("C2", age=None), _row("C3"), _row("C1"), _row("C2", age=None)]
    state: State = {"table": {"dataset": rows, "quarantine": [], "dropped_duplicates": []}, "chunks_count": 2}
    state |= _call("split", state)
    assert state["chunks"] == [{"start": 0, "stop": 2}, {"start": 2, "stop": 5}]
    state["chunk_results"] = _map(state, ["profile_chunk", "detect_chunk"])
    state |= _call("combine", state)
    assert state["duplicates"] == [[3, 0], [4, 1]]
    assert state["anomalies"]["checks"]["rows_unique"]["count"] == 2
    assert state["profile"]["columns"]["customer_id"]["distinct_count"] == 3
    state |= _call("generate_rules", state)
    state["chunk_fixes"] = _map(state, ["apply_chunk"])
    second = state["chunk_fixes"][1]
    assert (second["removed"], [e["row"] for e in second["dropped"]]) == ([3, 4], [rows[3], rows[4]])
    state |= _call("combine_fixes", state)
    assert [row_key(r) for r in state["table"]["dataset"]] == [
        row_key(rows[0]),
        row_key(_row("C2", age=36)),
        row_key(rows[2]),
    ]
    assert state["applied"]["dropped_rows"] == 2


def test_split_makes_contiguous_ranges_of_near_equal_size() -> None:
    rows = [_row(f"C{i}") for i in range(10)]
    for count, sizes in [(1, [10]), (3, [3, 3, 4]), (4, [2, 3, 2, 3]), (10, [1] * 10), (25, [1] * 10)]:
        chunks = _call("split", {"table": {"dataset": rows}, "chunks_count": count})["chunks"]
        assert [c["stop"] - c["start"] for c in chunks] == sizes
        assert [c["start"] for c in chunks] == [0, *(c["stop"] for c in chunks[:-1])]
    assert len(_call("split", {"table": {"dataset": rows}})["chunks"]) == DEFAULT_CHUNKS
    assert _call("split", {"table": {"dataset": []}})["chunks"] == [{"start": 0, "stop": 0}]


@pytest.mark.parametrize("count", [0, MAX_CHUNKS + 1, "4", True])
def test_split_refuses_a_bad_chunks_count(count: Any) -> None:
    with pytest.raises(ValueError, match="chunks_count"):
        _call("split", {"table": {"dataset": [_row("C1")]}, "chunks_count": count})


def test_the_joins_refuse_results_that_do_not_match_the_chunks() -> None:
    state = _first_fan_out(40, 3, 4)
    with pytest.raises(ValueError, match="3 results for 4 chunks"):
        _call("combine", {**state, "chunk_results": state["chunk_results"][:3]})
    swapped = [state["chunk_results"][1], state["chunk_results"][0], *state["chunk_results"][2:]]
    with pytest.raises(ValueError, match="not the result of chunk 0"):
        _call("combine", {**state, "chunk_results": swapped})
    with pytest.raises(ValueError, match="must cover the dataset"):
        results = state["chunk_results"]
        _call(
            "combine",
            {
                **state,
                "chunks": [state["chunks"][0], *state["chunks"][2:]],
                "chunk_results": [results[0], *results[2:]],
            },
        )
    with pytest.raises(ValueError, match="no chunks"):
        _call("combine_fixes", {**state, "chunks": []})


def test_a_branch_refuses_a_chunk_outside_the_dataset() -> None:
    state: State = {"table": {"dataset": [_row("C1")]}, "chunk": {"start": 0, "stop": 2}}
    with pytest.raises(ValueError, match="not within"):
        _call("profile_chunk", state)
    with pytest.raises(ValueError, match="must be a range"):
        _call("detect_chunk", {**state, "chunk": [0, 1]})


def test_apply_chunk_needs_the_duplicates_of_the_whole_dataset() -> None:
    state = _first_fan_out(40, 3, 2)
    state |= _call("combine", state)
    state |= _call("generate_rules", state)
    branch = {**state, "chunk": state["chunks"][0], "chunk_index": 0}
    with pytest.raises(ValueError, match="no duplicates"):
        _call("apply_chunk", {**branch, "duplicates": None})
    with pytest.raises(ValueError, match="not two rows"):
        _call("apply_chunk", {**branch, "duplicates": [[1, 5]]})


# the graph


def test_the_parallel_graph_fans_out_over_the_chunks_and_keeps_the_loop() -> None:
    definition = load_graph_json("data_quality_parallel")
    sequential = load_graph_json("data_quality")
    nodes, edges = definition["nodes"], definition["edges"]
    for node in nodes.values():
        REGISTRY.get(node["tool"])
    assert definition["start_node"] == "initialize"
    assert edges["initialize"] == "split"
    first, second = edges["split"]["map"], edges["generate_rules"]["map"]
    fan_outs = (
        (first, ["profile_chunk", "detect_chunk"], "chunk_results"),
        (second, ["apply_chunk"], "chunk_fixes"),
    )
    for fan_out, path, key in fan_outs:
        assert (fan_out["items"], fan_out["as"]) == ("chunks", "chunk")
        assert fan_out["collect"] == {"chunk_result": key}
        walked = [fan_out["start"]]
        while edges[walked[-1]] != fan_out["join"]:
            walked.append(edges[walked[-1]])
        assert walked == path
    assert (first["join"], second["join"]) == ("combine", "combine_fixes")
    assert edges["combine"] == "generate_rules"
    assert edges["combine_fixes"] == "evaluate"
    loop, default = edges["evaluate"]
    assert loop["when"] == sequential["edges"]["evaluate"][0]["when"]
    assert (loop["to"], default) == ("split", {"to": "report"})
    for name in ("evaluate", "report", "generate_rules", "initialize"):
        assert nodes[name]["tool"] == sequential["nodes"][name]["tool"]
    per_iteration = 5 + 3 * MAX_CHUNKS  # split, 2 steps a chunk, combine, rules, 1 a chunk, combine, evaluate
    assert definition["max_steps"] >= 2 + MAX_ITERATIONS_CAP * per_iteration
