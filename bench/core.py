"""Engine overhead: a three-node loop graph on the in-memory engine, against LangGraph.

The graph is ``a -> b -> c``, then back to ``a`` while ``i < n``, else ``__end__``;
``a`` increments ``i``. It runs for ``--steps`` node executions (3,000 by default)
on :class:`engine.InProcessDriver` (in-memory store and queue, every step
committed from its position with its log records). When ``langgraph`` is
installed (``pip install -e '.[bench]'``) the same graph runs on LangGraph's
``StateGraph`` with an ``InMemorySaver`` checkpointer in the same process, and
the ratio of steps per second is printed. The last line is JSON.

Run: ``.venv/bin/python bench/core.py [--steps 3000] [--repeats 7]`` (or ``make bench``).
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

TARGET_RATIO = 5.0
MAX_STEPS = 99_990
"""The most steps a run may take here: a graph's ``max_steps`` is at most 100,000."""


class State(TypedDict, total=False):
    """The LangGraph run's state (LangGraph reads the annotations at run time)."""

    i: int
    b: int
    c: int


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


def engine_runner(steps: int) -> Callable[[], int]:
    """A function that runs one graph run of ``steps`` node steps and returns the steps it took."""
    loops = steps // 3
    driver = InProcessDriver(_registry())
    graph_id = driver.service.create_graph(_loop_definition(loops, steps + 10)).graph_id

    def run_once() -> int:
        run = driver.run(graph_id, {"i": 0})
        if run.status is not RunStatus.SUCCEEDED or run.state["i"] != loops:
            raise RuntimeError(f"engine run ended {run.status} with {run.error}")
        return run.step

    return run_once


def langgraph_runner(steps: int) -> Callable[[], int] | None:
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
        for update in app.stream({"i": 0}, config, stream_mode="updates"):
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--steps", type=int, default=3000, help="node steps per run (a multiple of 3)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per engine; the best counts")
    args = parser.parse_args(argv)
    if args.steps % 3 or not 3 <= args.steps <= MAX_STEPS:
        parser.error(f"--steps must be a multiple of 3 between 3 and {MAX_STEPS:,}")

    runners = {"engine": engine_runner(args.steps)}
    other = langgraph_runner(args.steps)
    if other is not None:
        runners["langgraph"] = other
    measured = measure(runners, args.repeats)
    results: dict[str, Any] = {
        "benchmark": "core.three_node_loop",
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "repeats": args.repeats,
        "engine": measured["engine"],
        "langgraph": measured.get("langgraph"),
    }
    ours = measured["engine"]
    print(
        f"engine (InProcessDriver, in-memory): {ours['steps']} steps, "
        f"best {ours['best_steps_per_second']:,.0f} steps/s, median {ours['median_steps_per_second']:,.0f} steps/s"
    )
    theirs = measured.get("langgraph")
    if theirs is None:
        print("langgraph is not installed: pip install -e '.[bench]' to compare")
    else:
        ratio = ours["best_steps_per_second"] / theirs["best_steps_per_second"]
        median_ratio = ours["median_steps_per_second"] / theirs["median_steps_per_second"]
        results.update(
            ratio_best=round(ratio, 2),
            ratio_median=round(median_ratio, 2),
            target_ratio=TARGET_RATIO,
            meets_target=ratio >= TARGET_RATIO,
        )
        print(
            f"langgraph (StateGraph + InMemorySaver): {theirs['steps']} steps, "
            f"best {theirs['best_steps_per_second']:,.0f} steps/s, "
            f"median {theirs['median_steps_per_second']:,.0f} steps/s"
        )
        print(
            f"ratio: {ratio:.2f}x best, {median_ratio:.2f}x median "
            f"(target at least {TARGET_RATIO:g}x): {'met' if ratio >= TARGET_RATIO else 'NOT met'}"
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
