"""Engine overhead: a three-node loop graph on the in-memory engine, against LangGraph.

The graph is ``a -> b -> c``, then back to ``a`` while ``i < n``, else ``__end__``;
``a`` increments ``i``, ``b`` and ``c`` copy it into keys of their own. Two cases:

* ``small``: the state holds only those three integers; ``--steps`` node steps
  (3,000 by default).
* ``records``: the state also holds ``dataset``, ``--records`` rows (1,000 by
  default) of the Data Quality Pipeline's synthetic customers, which no step
  changes; ``--record-steps`` node steps (600 by default).

Each case runs on :class:`engine.InProcessDriver` (in-memory store and queue,
every step committed from its position with its log records). When
``langgraph`` is installed (``pip install -e '.[bench]'``) the same graph runs on
LangGraph's ``StateGraph`` with an ``InMemorySaver`` checkpointer in the same
process, and the ratio of steps per second is printed per case. The last line
is JSON.

Run: ``.venv/bin/python bench/core.py [--steps 3000] [--records 1000] [--repeats 7]`` (or ``make bench``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, TypedDict

from engine import InProcessDriver, RunStatus, ToolContext, ToolRegistry
from engine.tools.dq.dataset import generate

TARGET_RATIOS = {"small": 6.0, "records": 2.0}
"""At least this many times LangGraph's steps per second, per case."""
MAX_STEPS = 99_990
"""The most steps a run may take here: a graph's ``max_steps`` is at most 100,000."""


class State(TypedDict, total=False):
    """The LangGraph run's state (LangGraph reads the annotations at run time)."""

    i: int
    b: int
    c: int
    dataset: list[dict[str, Any]]


def _loop_definition(loops: int, max_steps: int) -> dict[str, Any]:
    return {
        "name": "bench-loop",
        "start_node": "a",
        "nodes": {"a": {"tool": "bench.a"}, "b": {"tool": "bench.b"}, "c": {"tool": "bench.c"}},
        "edges": {
            "a": "b",
            "b": "c",
            "c": [{"when": {"key": "i", "op": "<", "value": loops}, "to": "a"}, {"to": "__end__"}],
        },
        "max_steps": max_steps,
    }


def _registry() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool("bench.a")
    def step_a(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"i": state["i"] + 1}

    @registry.tool("bench.b")
    def step_b(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"b": state["i"]}

    @registry.tool("bench.c")
    def step_c(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"c": state["i"]}

    return registry


def initial_state(records: int) -> dict[str, Any]:
    """``i`` at 0, and ``records`` synthetic customer rows as ``dataset`` if any."""
    if not records:
        return {"i": 0}
    rows, _ = generate(records, seed=7)
    return {"i": 0, "dataset": rows}


def engine_runner(steps: int, state: dict[str, Any]) -> Callable[[], int]:
    """A function that runs one graph run of ``steps`` node steps from ``state`` and returns the steps it took."""
    loops = steps // 3
    driver = InProcessDriver(_registry())
    graph_id = driver.service.create_graph(_loop_definition(loops, steps + 10)).graph_id

    def run_once() -> int:
        run = driver.run(graph_id, state)
        if run.status is not RunStatus.SUCCEEDED or run.state["i"] != loops:
            raise RuntimeError(f"engine run ended {run.status} with {run.error}")
        return run.step

    return run_once


def langgraph_runner(steps: int, state: dict[str, Any]) -> Callable[[], int] | None:
    """The same graph on LangGraph with an ``InMemorySaver``; ``None`` if LangGraph is not installed."""
    try:
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.graph import END, START, StateGraph
    except ImportError:
        return None

    loops = steps // 3

    def step_a(state: State) -> dict[str, Any]:
        return {"i": state["i"] + 1}

    def step_b(state: State) -> dict[str, Any]:
        return {"b": state["i"]}

    def step_c(state: State) -> dict[str, Any]:
        return {"c": state["i"]}

    def route(state: State) -> str:
        return "a" if state["i"] < loops else END

    builder = StateGraph(State)
    builder.add_node("a", step_a)
    builder.add_node("b", step_b)
    builder.add_node("c", step_c)
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    builder.add_conditional_edges("c", route, ["a", END])
    app = builder.compile(checkpointer=InMemorySaver())
    counter = iter(range(1_000_000))

    def run_once() -> int:
        config = {"configurable": {"thread_id": f"bench-{next(counter)}"}, "recursion_limit": steps + 10}
        taken = 0
        final: dict[str, Any] = {}
        for update in app.stream(state, config, stream_mode="updates"):
            taken += len(update)
            for delta in update.values():
                final.update(delta or {})
        if final.get("i") != loops:
            raise RuntimeError(f"langgraph run ended with {final}")
        return taken

    return run_once


def _time_once(run_once: Callable[[], int]) -> tuple[int, float]:
    gc.collect()
    start = time.perf_counter()
    steps = run_once()
    return steps, steps / (time.perf_counter() - start)


def measure(runners: dict[str, Callable[[], int]], repeats: int) -> dict[str, dict[str, Any]]:
    """Best and median steps per second of each runner over ``repeats`` runs, after one warm-up run each.

    The runners take turns, so a burst of load from elsewhere on the machine
    slows all of them rather than one.
    """
    for run_once in runners.values():
        run_once()
    rates: dict[str, list[float]] = {name: [] for name in runners}
    steps: dict[str, int] = {}
    for _ in range(repeats):
        for name, run_once in runners.items():
            steps[name], rate = _time_once(run_once)
            rates[name].append(rate)
    return {
        name: {
            "steps": steps[name],
            "best_steps_per_second": round(max(rates[name]), 1),
            "median_steps_per_second": round(statistics.median(rates[name]), 1),
        }
        for name in runners
    }


def run_case(name: str, steps: int, records: int, repeats: int) -> dict[str, Any]:
    """Measure one case on both engines, print it, and return its figures."""
    state = initial_state(records)
    runners = {"engine": engine_runner(steps, state)}
    other = langgraph_runner(steps, state)
    if other is not None:
        runners["langgraph"] = other
    measured = measure(runners, repeats)
    result: dict[str, Any] = {"records": records, **measured, "langgraph": measured.get("langgraph")}
    ours = measured["engine"]
    print(
        f"[{name}: {records} records in the state] engine (InProcessDriver, in-memory): {ours['steps']} steps, "
        f"best {ours['best_steps_per_second']:,.0f} steps/s, median {ours['median_steps_per_second']:,.0f} steps/s"
    )
    theirs = measured.get("langgraph")
    if theirs is None:
        print("langgraph is not installed: pip install -e '.[bench]' to compare")
        return result
    target = TARGET_RATIOS[name]
    ratio = ours["best_steps_per_second"] / theirs["best_steps_per_second"]
    median_ratio = ours["median_steps_per_second"] / theirs["median_steps_per_second"]
    result.update(
        ratio_best=round(ratio, 2),
        ratio_median=round(median_ratio, 2),
        target_ratio=target,
        meets_target=ratio >= target,
    )
    print(
        f"[{name}] langgraph (StateGraph + InMemorySaver): {theirs['steps']} steps, "
        f"best {theirs['best_steps_per_second']:,.0f} steps/s, "
        f"median {theirs['median_steps_per_second']:,.0f} steps/s"
    )
    print(
        f"[{name}] ratio: {ratio:.2f}x best, {median_ratio:.2f}x median "
        f"(target at least {target:g}x): {'met' if ratio >= target else 'NOT met'}"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--steps", type=int, default=3000, help="node steps per run at small state (a multiple of 3)"
    )
    parser.add_argument("--records", type=int, default=1000, help="rows in the state of the records case")
    parser.add_argument(
        "--record-steps",
        type=int,
        default=600,
        help="node steps per run of the records case (a multiple of 3)",
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per engine; the best counts")
    args = parser.parse_args(argv)
    for option, steps in (("--steps", args.steps), ("--record-steps", args.record_steps)):
        if steps % 3 or not 3 <= steps <= MAX_STEPS:
            parser.error(f"{option} must be a multiple of 3 between 3 and {MAX_STEPS:,}")
    if args.records < 1:
        parser.error("--records must be at least 1")

    results: dict[str, Any] = {
        "benchmark": "core.three_node_loop",
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "repeats": args.repeats,
        "small": run_case("small", args.steps, 0, args.repeats),
        "records": run_case("records", args.record_steps, args.records, args.repeats),
    }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
