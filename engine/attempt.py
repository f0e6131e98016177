"""One attempt of a node: run its tool, time it, and hand the result to the pure decision.

:func:`run_tool` is the impure half of a step: it looks the tool up, runs it
with a :class:`~engine.runner.ToolRunner` (in this process or a forked child)
on a copy of the state, measures how long it ran, and turns what happened into
a :data:`~engine.step.ToolResult`. :func:`execute_step` reads the clock and the
random source around it and lets :func:`engine.step.decide` say what follows.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import ToolTimeoutError
from engine.model import Run
from engine.registry import ToolContext, ToolRegistry
from engine.runner import IN_PROCESS, ToolRunner
from engine.snapshots import fresh
from engine.step import (
    Clock,
    CompiledGraph,
    Raised,
    Returned,
    StepOutcome,
    TimedOut,
    ToolResult,
    decide,
    needs_draw,
    run_timed_out,
)

__all__ = ["ToolRun", "execute_step", "run_tool"]


@dataclass(frozen=True)
class ToolRun:
    """What one run of a tool gave, and how long it took (milliseconds, from ``time.perf_counter``)."""

    result: ToolResult
    duration_ms: float


def run_tool(
    compiled: CompiledGraph,
    run: Run,
    registry: ToolRegistry,
    *,
    runner: ToolRunner = IN_PROCESS,
    time_left: float | None = None,
    idempotency_key: str | None = None,
) -> ToolRun:
    """Run the tool of the node at ``run``'s position with ``runner``.

    ``idempotency_key`` replaces the context's default (a branch step's is its own).

    ``time_left`` (seconds) bounds the tool's time limit when it is shorter than
    the node's ``timeout_seconds``; a tool stopped there has timed out with a
    message that says it ran out of the step's time. An unknown tool is an error
    of the attempt, as is anything the tool raises. A node without a tool (a
    wait, a callback) returns nothing.
    """
    node_name = run.current_node or compiled.graph.start_node
    node = compiled.graph.nodes[node_name]
    if node.tool is None:
        return ToolRun(Returned(None), 0.0)
    ctx = ToolContext(
        run.run_id, run.graph_id, node_name, run.step, run.attempt, fresh(node.params), idempotency_key
    )
    tick = time.perf_counter()
    result: ToolResult
    try:
        tool = registry.get(node.tool)
        limit = node.timeout_seconds
        if time_left is not None and (limit is None or time_left < limit):
            try:
                value = runner.run(tool, run.state.copy(), ctx, max(time_left, 0.001))
            except ToolTimeoutError:
                raise ToolTimeoutError(
                    f"tool {node.tool!r} ran out of the step's time ({time_left:.3g}s left in the invocation)"
                ) from None
        else:
            value = runner.run(tool, run.state.copy(), ctx, limit)
        result = Returned(value)
    except ToolTimeoutError as exc:
        result = TimedOut(str(exc))
    except Exception as exc:
        result = Raised.of(exc)
    return ToolRun(result, (time.perf_counter() - tick) * 1000)


def execute_step(
    compiled: CompiledGraph,
    run: Run,
    registry: ToolRegistry,
    *,
    clock: Clock = time.time,
    random: Callable[[], float] = _random.random,
    runner: ToolRunner = IN_PROCESS,
    time_left: float | None = None,
) -> StepOutcome:
    """Run the node at ``run``'s position (:func:`run_tool`) and decide what comes next (:func:`decide`).

    The run's own deadline is checked at ``clock()`` first: past it, the tool
    does not run. ``random`` is drawn only at a position whose failure would retry
    with full jitter.
    """
    started = clock()
    timed_out = run_timed_out(compiled, run, started)
    if timed_out is not None:
        return timed_out
    done = run_tool(compiled, run, registry, runner=runner, time_left=time_left)
    now = clock()
    draw = random() if needs_draw(compiled, run) else 1.0
    return decide(
        compiled, run, done.result, started=started, now=now, duration_ms=done.duration_ms, draw=draw
    )
