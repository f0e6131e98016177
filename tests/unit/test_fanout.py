"""The fan-out, branch steps and the join as pure decisions (:mod:`engine.fanout`), with no store.

Each test starts a run at its fan-out node, feeds :func:`engine.step.decide` and
:func:`engine.fanout.decide_branch` tool results as values, and applies each
outcome's changes to the run as a store would (:meth:`RunChanges.apply`).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from engine.fanout import branch_view, decide_branch, running_messages
from engine.graph import Graph
from engine.limits import MAX_MAP_ITEMS
from engine.model import LogRecord, LogType, Run, RunStatus, StepMessage
from engine.step import CompiledGraph, Raised, Returned, StepOutcome, ToolResult, decide

NOW = 1_000.0


def compiled(definition: dict[str, Any]) -> CompiledGraph:
    return CompiledGraph(Graph.model_validate({"name": "g", **definition}))


def parallel(
    branches: dict[str, list[str]], *, reducers: dict[str, str] | None = None, **extra: Any
) -> CompiledGraph:
    """``split`` fans out to each branch (its nodes in a line, the first its name), joined at ``merge``."""
    nodes: dict[str, Any] = {"split": "t.noop", "merge": "t.noop"}
    edges: dict[str, Any] = {"split": {"parallel": list(branches), "join": "merge"}, "merge": "__end__"}
    for path in branches.values():
        for here, there in zip(path, [*path[1:], "merge"], strict=True):
            nodes[here] = "t.noop"
            edges[here] = there
    nodes.update(extra.pop("nodes", {}))
    edges.update(extra.pop("edges", {}))
    return compiled(
        {"start_node": "split", "nodes": nodes, "edges": edges, "reducers": reducers or {}, **extra}
    )


def mapped(max_concurrency: int = 10, **extra: Any) -> CompiledGraph:
    """``make`` maps ``sq`` over ``items`` (at most ``max_concurrency`` at once), joined at ``done``."""
    return compiled(
        {
            "start_node": "make",
            "nodes": {"make": "t.noop", "sq": "t.noop", "done": "t.noop"},
            "edges": {
                "make": {
                    "map": {
                        "items": "items",
                        "start": "sq",
                        "join": "done",
                        "max_concurrency": max_concurrency,
                        "collect": {"square": "squares"},
                    }
                },
                "sq": "done",
                "done": "__end__",
            },
            "reducers": {"total": "sum"},
            **extra,
        }
    )


def run_at(node: str, state: dict[str, Any] | None = None) -> Run:
    return Run(
        run_id="r",
        graph_id="g",
        graph_version=1,
        status=RunStatus.RUNNING,
        state=state or {},
        current_node=node,
        next_seq=1,
        created_at=0.0,
        updated_at=0.0,
    )


class Trace:
    """A run driven by hand: each decision's changes applied, every record kept."""

    def __init__(self, graph: CompiledGraph, run: Run) -> None:
        self.graph = graph
        self.run = run
        self.records: list[LogRecord] = []

    def _apply(self, outcome: StepOutcome) -> StepOutcome:
        self.run = outcome.changes.apply(self.run)
        self.records.extend(outcome.records)
        return outcome

    def main(self, updates: dict[str, Any] | None = None) -> StepOutcome:
        """The main path's node returned ``updates``."""
        return self._apply(
            decide(self.graph, self.run, Returned(updates or {}), started=NOW, now=NOW, duration_ms=1.0)
        )

    def branch(self, index: int, result: ToolResult | dict[str, Any] | None = None) -> StepOutcome:
        """Branch ``index``'s node gave ``result`` (a dict: it returned that)."""
        if not isinstance(result, Returned | Raised):
            result = Returned(result or {})
        return self._apply(
            decide_branch(self.graph, self.run, index, result, started=NOW, now=NOW, duration_ms=1.0)
        )

    @property
    def fanout(self) -> Any:
        assert self.run.fanout is not None
        return self.run.fanout

    def types(self) -> list[str]:
        return [str(r.type) for r in self.records]


# the fan-out


def test_a_parallel_fan_out_starts_every_branch_with_a_message_each() -> None:
    trace = Trace(parallel({"a": ["a"], "b": ["b"], "c": ["c"]}), run_at("split", {"x": 1}))

    outcome = trace.main({"y": 2})

    fanout = trace.fanout
    assert (fanout.node, fanout.join, fanout.kind, fanout.step) == ("split", "merge", "parallel", 0)
    assert (fanout.size, fanout.started, fanout.arrived) == (3, 3, 0)
    assert fanout.names == ["a", "b", "c"]
    assert {k: (b.node, b.position) for k, b in fanout.running.items()} == {
        "0": ("a", (0, 1)),
        "1": ("b", (0, 1)),
        "2": ("c", (0, 1)),
    }
    assert fanout.updates == {"0": {}, "1": {}, "2": {}}
    assert outcome.messages == [
        StepMessage(run_id="r", step=0, attempt=1, fanout=0, branch=i) for i in range(3)
    ]
    assert len({m.group for m in outcome.messages}) == 3
    assert trace.run.state == {"x": 1, "y": 2}
    assert (trace.run.current_node, trace.run.step) == ("split", 1)
    assert trace.types() == ["step_started", "step_succeeded", "fanned_out"]
    assert trace.records[-1].data == {"branches": ["a", "b", "c"], "join": "merge"}


def test_a_map_starts_max_concurrency_items_and_each_sees_its_item_and_index() -> None:
    trace = Trace(mapped(max_concurrency=3), run_at("make", {"items": [5, 6, 7, 8, 9]}))

    outcome = trace.main()

    fanout = trace.fanout
    assert (fanout.kind, fanout.items, fanout.size, fanout.started) == ("map", "items", 5, 3)
    assert sorted(fanout.running) == ["0", "1", "2"]
    assert [m.branch for m in outcome.messages] == [0, 1, 2]
    assert running_messages(trace.run) == outcome.messages
    assert [fanout.name(i) for i in range(5)] == [f"items[{i}]" for i in range(5)]
    view = branch_view(trace.graph, trace.run, 2)
    assert (view.current_node, view.attempt) == ("sq", 1)
    assert view.state["item"] == 7
    assert view.state["item_index"] == 2
    assert "item" not in trace.run.state
    assert trace.records[-1].data == {"items": 5, "max_concurrency": 3, "join": "done"}


def test_a_map_over_an_empty_list_goes_straight_to_the_join_with_empty_collect_keys() -> None:
    trace = Trace(mapped(), run_at("make", {"items": []}))

    outcome = trace.main()

    assert trace.run.fanout is None
    assert (trace.run.current_node, trace.run.step, trace.run.status) == ("done", 1, RunStatus.RUNNING)
    assert trace.run.state["squares"] == []
    assert outcome.messages == [StepMessage(run_id="r", step=1)]
    assert trace.types() == ["step_started", "step_succeeded", "edge_taken"]
    assert trace.records[-1].data == {"to": "done", "items": 0}


def test_a_map_whose_items_are_not_a_list_fails_the_run() -> None:
    for state, found in (({"items": {"a": 1}}, "dict"), ({}, "nothing")):
        trace = Trace(mapped(), run_at("make", state))

        outcome = trace.main({"other": 1})

        assert outcome.messages == []
        assert trace.run.status is RunStatus.FAILED
        assert trace.run.error is not None
        assert trace.run.error.type == "MapItemsNotAList"
        assert found in trace.run.error.message
        assert trace.run.state["other"] == 1, "the node's own updates are kept"
        assert trace.types()[-1] == "run_failed"


def test_a_map_over_more_than_the_ceiling_fails_the_run() -> None:
    trace = Trace(mapped(), run_at("make"))

    trace.main({"items": list(range(MAX_MAP_ITEMS + 1))})

    assert trace.run.status is RunStatus.FAILED
    assert trace.run.error is not None
    assert trace.run.error.type == "MapTooLarge"
    assert str(MAX_MAP_ITEMS) in trace.run.error.message
    assert trace.run.fanout is None


def test_a_map_of_exactly_the_ceiling_starts() -> None:
    trace = Trace(mapped(max_concurrency=2), run_at("make"))

    trace.main({"items": list(range(MAX_MAP_ITEMS))})

    assert trace.fanout.size == MAX_MAP_ITEMS
    assert trace.fanout.started == 2


# branch steps


def test_a_branch_moves_on_keeping_its_updates_to_itself() -> None:
    trace = Trace(parallel({"a": ["a", "a2"], "b": ["b"]}), run_at("split", {"x": 0}))
    trace.main()

    outcome = trace.branch(0, {"x": 1, "ya": True})

    fanout = trace.fanout
    assert (fanout.running["0"].node, fanout.running["0"].position) == ("a2", (1, 1))
    assert fanout.running["1"].position == (0, 1)
    assert fanout.updates["0"] == {"x": 1, "ya": True}
    assert trace.run.state == {"x": 0}, "the run's state changes only at the join"
    assert outcome.changes.fanout_written == frozenset({"0"})
    assert outcome.messages == [StepMessage(run_id="r", step=1, attempt=1, fanout=0, branch=0)]
    assert trace.run.step == 2
    assert branch_view(trace.graph, trace.run, 0).state == {"x": 1, "ya": True}
    assert branch_view(trace.graph, trace.run, 1).state == {"x": 0}
    assert trace.types()[-3:] == ["step_started", "step_succeeded", "edge_taken"]
    assert [r.branch for r in trace.records[-3:]] == ["a", "a", "a"]


def test_a_failing_branch_step_is_retried_with_its_delay_and_next_attempt() -> None:
    graph = parallel(
        {"a": ["a"], "b": ["b"]},
        nodes={"a": {"tool": "t.noop", "retry": {"max_attempts": 3, "interval_seconds": 2}}},
    )
    trace = Trace(graph, run_at("split"))
    trace.main()

    outcome = trace.branch(0, Raised("ConnectionError", "flaky"))

    retried = trace.fanout.running["0"]
    assert (retried.node, retried.step, retried.attempt, retried.not_before) == ("a", 0, 2, NOW + 2)
    assert outcome.messages == [
        StepMessage(run_id="r", step=0, attempt=2, not_before=NOW + 2, fanout=0, branch=0)
    ]
    assert outcome.changes.fanout_written == frozenset()
    assert trace.run.step == 1, "a failed attempt is not a node execution"
    assert trace.types()[-3:] == ["step_started", "step_failed", "retry_scheduled"]
    assert trace.records[-1].attempt == 2

    trace.branch(0, Raised("ConnectionError", "flaky"))
    assert (trace.fanout.running["0"].attempt, trace.fanout.running["0"].not_before) == (3, NOW + 4)


def test_a_catch_inside_a_branch_moves_the_branch_with_the_error() -> None:
    graph = parallel(
        {"a": ["a"], "b": ["b"]},
        nodes={"a": {"tool": "t.noop", "catch": "fix"}, "fix": "t.noop"},
        edges={"fix": "merge"},
    )
    trace = Trace(graph, run_at("split"))
    trace.main()

    trace.branch(0, Raised("ValueError", "bad"))

    assert trace.run.status is RunStatus.RUNNING
    assert trace.fanout.running["0"].node == "fix"
    assert trace.fanout.updates["0"]["error"]["type"] == "ValueError"
    assert trace.types()[-3:] == ["step_started", "step_failed", "edge_taken"]


def test_a_branch_that_fails_for_good_fails_the_run_naming_the_branch_and_cancels_its_siblings() -> None:
    trace = Trace(parallel({"a": ["a"], "b": ["b"], "c": ["c"]}), run_at("split"))
    trace.main()
    trace.branch(1)

    outcome = trace.branch(0, Raised("ValueError", "broken"))

    assert outcome.messages == []
    assert trace.run.status is RunStatus.FAILED
    assert trace.run.fanout is None, "no sibling can commit a step after this"
    assert trace.run.error is not None
    assert trace.run.error.type == "ValueError"
    assert "branch a failed at 'a'" in trace.run.error.message
    assert trace.types()[-2:] == ["branch_failed", "run_failed"]
    assert trace.records[-2].data is not None
    assert trace.records[-2].data["cancelled"] == 1
    assert trace.records[-2].branch == "a"


def test_a_failed_branch_takes_the_fan_out_nodes_catch() -> None:
    graph = parallel(
        {"a": ["a"], "b": ["b"]},
        nodes={"split": {"tool": "t.noop", "catch": "recover"}, "recover": "t.noop"},
        edges={"recover": "__end__"},
    )
    trace = Trace(graph, run_at("split"))
    trace.main()

    outcome = trace.branch(1, Raised("ValueError", "broken"))

    assert trace.run.status is RunStatus.RUNNING
    assert trace.run.fanout is None
    assert trace.run.current_node == "recover"
    assert trace.run.state["error"]["type"] == "ValueError"
    assert "branch b" in trace.run.state["error"]["message"]
    assert outcome.messages == [StepMessage(run_id="r", step=trace.run.step)]
    assert trace.types()[-2:] == ["branch_failed", "edge_taken"]
    assert trace.records[-1].data == {"to": "recover", "catch": True, "branch": "b"}


def test_a_branch_ending_the_run_instead_of_reaching_the_join_fails_it() -> None:
    graph = parallel({"a": ["a"], "b": ["b"]}, edges={"a": "__end__"})
    trace = Trace(graph, run_at("split"))
    trace.main()

    trace.branch(0)

    assert trace.run.status is RunStatus.FAILED
    assert trace.run.error is not None
    assert trace.run.error.type == "BranchEnded"


# arrival and the join


def test_an_arrival_starts_the_next_map_item() -> None:
    trace = Trace(mapped(max_concurrency=1), run_at("make", {"items": [2, 3, 4]}))
    trace.main()
    assert sorted(trace.fanout.running) == ["0"]

    outcome = trace.branch(0, {"square": 4, "total": 2})

    fanout = trace.fanout
    assert (fanout.started, fanout.arrived, sorted(fanout.running)) == (2, 1, ["1"])
    assert outcome.messages == [StepMessage(run_id="r", step=0, attempt=1, fanout=0, branch=1)]
    assert outcome.changes.fanout_written == frozenset({"0", "1"})
    assert trace.types()[-1] == "branch_succeeded"
    assert trace.records[-1].branch == "items[0]"
    assert branch_view(trace.graph, trace.run, 1).state["item"] == 3


def test_an_arrival_with_siblings_running_sends_nothing() -> None:
    trace = Trace(parallel({"a": ["a"], "b": ["b"]}), run_at("split"))
    trace.main()

    outcome = trace.branch(1, {"k": 1})

    assert outcome.messages == []
    assert sorted(trace.fanout.running) == ["0"]
    assert trace.fanout.updates["1"] == {"k": 1}


def test_the_join_merges_in_branch_order_with_reducers_whatever_the_arrival_order() -> None:
    graph = parallel(
        {"a": ["a"], "b": ["b"], "c": ["c"]}, reducers={"path": "extend", "count": "sum", "seen": "merge"}
    )
    trace = Trace(graph, run_at("split", {"count": 10, "path": ["start"]}))
    trace.main()

    for index, name in ((2, "c"), (0, "a"), (1, "b")):
        outcome = trace.branch(index, {"path": [name], "count": index + 1, "seen": {name: index}, name: 1})

    assert trace.run.fanout is None
    assert (trace.run.current_node, trace.run.status) == ("merge", RunStatus.RUNNING)
    assert outcome.messages == [StepMessage(run_id="r", step=trace.run.step)]
    state = trace.run.state
    assert state["path"] == ["start", "a", "b", "c"]
    assert state["count"] == 16
    assert state["seen"] == {"a": 0, "b": 1, "c": 2}
    assert (state["a"], state["b"], state["c"]) == (1, 1, 1)
    assert trace.types().count("joined") == 1
    joined = trace.records[-1]
    assert (joined.type, joined.node, joined.branch) == (LogType.JOINED, "merge", None)


def test_a_map_collects_in_item_order_and_drops_the_item_keys() -> None:
    trace = Trace(mapped(max_concurrency=2), run_at("make", {"items": [3, 1, 2]}))
    trace.main()

    trace.branch(1, {"square": 1, "total": 1})
    trace.branch(0, {"square": 9, "total": 3, "item": "ignored"})
    trace.branch(2, {"square": 4, "total": 2})

    state = trace.run.state
    assert state["squares"] == [9, 1, 4]
    assert state["total"] == 6
    assert "item" not in state
    assert "item_index" not in state
    assert "square" not in state
    assert trace.run.current_node == "done"


def test_two_branches_writing_a_key_without_reducer_fail_the_run_naming_key_and_branches() -> None:
    trace = Trace(parallel({"a": ["a"], "b": ["b"], "c": ["c"]}), run_at("split"))
    trace.main()

    trace.branch(0, {"x": 1})
    trace.branch(1, {"y": 1})
    trace.branch(2, {"x": 2})

    assert trace.run.status is RunStatus.FAILED
    assert trace.run.fanout is None
    error = trace.run.error
    assert error is not None
    assert (error.type, error.node) == ("MergeConflict", "merge")
    assert "'x'" in error.message
    assert "'a'" in error.message and "'c'" in error.message
    assert "'b'" not in error.message
    assert "x" not in trace.run.state


def test_a_value_its_reducer_cannot_take_fails_the_run_at_the_join() -> None:
    trace = Trace(parallel({"a": ["a"], "b": ["b"]}, reducers={"n": "sum"}), run_at("split"))
    trace.main()

    trace.branch(0, {"n": 1})
    trace.branch(1, {"n": "two"})

    assert trace.run.status is RunStatus.FAILED
    assert trace.run.error is not None
    assert trace.run.error.type == "ReducerError"


# limits and the log


def test_max_steps_stops_a_fan_out_and_a_branch() -> None:
    trace = Trace(parallel({"a": ["a"], "b": ["b"]}, max_steps=1), run_at("split"))
    trace.main()
    assert trace.run.status is RunStatus.FAILED
    assert trace.run.error is not None
    assert trace.run.error.type == "MaxStepsExceeded"

    trace = Trace(parallel({"a": ["a", "a2"], "b": ["b"]}, max_steps=3), run_at("split"))
    trace.main()
    trace.branch(1)
    assert trace.run.step == 2
    trace.branch(0)
    assert trace.run.status is RunStatus.FAILED
    assert trace.run.error is not None
    assert trace.run.error.type == "MaxStepsExceeded"
    assert "branch a" in trace.run.error.message


def test_records_are_numbered_without_gaps_and_branch_records_name_their_branch() -> None:
    graph = parallel(
        {"a": ["a", "a2"], "b": ["b"]},
        nodes={"b": {"tool": "t.noop", "retry": {"max_attempts": 2, "interval_seconds": 0}}},
    )
    trace = Trace(graph, run_at("split"))
    trace.main()
    trace.branch(1, Raised("ConnectionError", "once"))
    trace.branch(0)
    trace.branch(1)
    trace.branch(0)
    trace.main()

    assert trace.run.status is RunStatus.SUCCEEDED
    assert [r.seq for r in trace.records] == list(range(1, len(trace.records) + 1))
    assert trace.run.next_seq == len(trace.records) + 1
    by_branch = [(str(r.type), r.node, r.branch) for r in trace.records]
    for type_, node, branch in by_branch:
        if node in ("a", "a2"):
            assert branch == "a", (type_, node)
        elif node == "b":
            assert branch == "b", (type_, node)
        else:
            assert branch is None, (type_, node)
    assert by_branch.count(("joined", "merge", None)) == 1


@given(st.permutations(range(4)), st.integers(min_value=1, max_value=4))
def test_the_joined_state_does_not_depend_on_the_arrival_order(order: list[int], width: int) -> None:
    def finish(arrivals: list[int]) -> dict[str, Any]:
        trace = Trace(mapped(max_concurrency=width), run_at("make", {"items": [1, 2, 3, 4]}))
        trace.main()
        pending = list(arrivals)
        while trace.run.fanout is not None:
            index = next(i for i in pending if str(i) in trace.fanout.running)
            pending.remove(index)
            item = trace.run.state["items"][index]
            trace.branch(index, {"square": item * item, "total": item})
        assert [r.seq for r in trace.records] == list(range(1, len(trace.records) + 1))
        return dict(trace.run.state)

    assert finish(order) == finish([0, 1, 2, 3])
