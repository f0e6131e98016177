"""Isolation's cost: one step on the in-memory service, its tool in-process or in a forked child.

An isolated step (a redelivered record under ``STEP_ISOLATION=suspects``) pays
a fork, a pipe round trip and the child's exit, plus one delivery-note write
(in memory here; one conditional ``UpdateItem`` on DynamoDB). The state is
copied to the child by the fork; the result comes back pickled, so a bigger
state update costs more: ``--state-kb`` sets the size of the update.

Usage: ``.venv/bin/python bench/isolation.py [--steps 300] [--state-kb 1]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from engine import InProcessDriver, StepMessage, ToolContext, ToolRegistry
from engine.runner import ForkRunner


def measure(steps: int, isolate: bool, state_kb: int) -> list[float]:
    registry = ToolRegistry()
    payload = "x" * (state_kb * 1024)

    @registry.tool("b.step", description="Returns a payload")
    def step(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"payload": payload, "n": ctx.step}

    driver = InProcessDriver(registry)
    service = driver.service
    service.isolated_runner = ForkRunner(memory_bytes=256 * 1024 * 1024)
    graph = service.create_graph({"name": "b", "start_node": "a", "nodes": {"a": "b.step"}})
    times = []
    for _ in range(steps):
        run = service.start_run(graph.graph_id, {})
        message = StepMessage(run_id=run.run_id, step=0)
        tick = time.perf_counter()
        service.run_step(message, isolate=isolate, time_left=25.0, receives=2 if isolate else 1)
        times.append((time.perf_counter() - tick) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--state-kb", type=int, default=1)
    args = parser.parse_args()
    print(f"{args.steps} steps, {args.state_kb} KB state update each (ms per step)")
    print(f"{'runner':<12} {'median':>8} {'p90':>8}")
    for name, isolate in (("in-process", False), ("forked", True)):
        times = sorted(measure(args.steps, isolate, args.state_kb))
        p90 = times[int(len(times) * 0.9)]
        print(f"{name:<12} {statistics.median(times):8.3f} {p90:8.3f}")


if __name__ == "__main__":
    main()
