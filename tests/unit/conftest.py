"""Fixtures of the engine unit tests: a fresh tool registry, a fake clock, an in-process driver.

Each test gets its own :class:`ToolRegistry` so tools registered by one test never
collide with another's or with the global ``REGISTRY``. The driver's clock is a
:class:`FakeClock` whose ``sleep`` only moves time: retry delays cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from engine import FakeClock, InProcessDriver, Run, ToolContext, ToolRegistry, WorkflowService

Definition = dict[str, Any]


@pytest.fixture
def registry() -> ToolRegistry:
    """A registry with a few plain tools: ``t.noop``, ``t.inc`` (``i += 1``), ``t.mark`` (``marks += [node]``)."""
    reg = ToolRegistry()

    @reg.tool("t.noop", description="Does nothing")
    def noop(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {}

    @reg.tool("t.inc", description="Adds one to i")
    def inc(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"i": state.get("i", 0) + 1}

    @reg.tool("t.mark", description="Appends the node's name to marks")
    def mark(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"marks": [*state.get("marks", []), ctx.node]}

    return reg


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rng_values() -> list[float]:
    """The values the driver's random source returns, in order; a test may replace them."""
    return []


@pytest.fixture
def driver(registry: ToolRegistry, clock: FakeClock, rng_values: list[float]) -> InProcessDriver:
    def rng() -> float:
        return rng_values.pop(0) if rng_values else 1.0

    return InProcessDriver(registry, clock=clock, sleep=clock.sleep, rng=rng)


@pytest.fixture
def service(driver: InProcessDriver) -> WorkflowService:
    return driver.service


@pytest.fixture
def run_graph(driver: InProcessDriver) -> Callable[..., Run]:
    """Create a graph from a definition and run it to the end on the driver's queue."""

    def run(definition: Definition, initial_state: dict[str, Any] | None = None) -> Run:
        graph_id = driver.service.create_graph(definition).graph_id
        return driver.run(graph_id, initial_state)

    return run


def log_types(driver: InProcessDriver, run_id: str) -> list[str]:
    """The types of a run's committed log records, in order."""
    return [str(r.type) for r in driver.service.list_logs(run_id)]
