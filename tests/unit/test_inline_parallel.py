"""``wait`` mode (an inline run) runs a fan-out's branches in the request too."""

from __future__ import annotations

from engine.driver import FakeClock, InProcessDriver
from engine.registry import REGISTRY, ToolRegistry
from tests.support.tools import map_graph, parallel_graph


def driver() -> InProcessDriver:
    registry = ToolRegistry()
    for name in ("test.noop", "test.tag", "test.square", "test.items"):
        tool = REGISTRY.get(name)
        registry.register(name, tool.func, tool.description)
    clock = FakeClock()
    return InProcessDriver(registry, clock=clock, sleep=clock.sleep)


def test_an_inline_parallel_run_ends_in_the_request() -> None:
    d = driver()
    graph = d.service.create_graph(parallel_graph(3))

    run = d.service.run_inline(graph.graph_id, {}, sleep=d.sleep)

    assert run.status == "SUCCEEDED", run.error
    assert d.service.get_run(run.run_id).state["path"] == ["b0", "b1", "b2"]
    left = [d.queue.pop() for _ in range(len(d.queue))]
    assert [m.watchdog for m in left if m is not None] == [True], "only the watchdog was queued"


def test_an_inline_map_that_outlasts_the_budget_is_handed_to_the_queue_and_completes() -> None:
    d = driver()
    graph = d.service.create_graph(map_graph(max_concurrency=3))

    run = d.service.run_inline(graph.graph_id, {"n": 8}, budget_seconds=0.0, sleep=d.sleep)
    assert run.status == "RUNNING"
    d.drain()

    done = d.service.get_run(run.run_id)
    assert done.status == "SUCCEEDED", done.error
    assert done.state["squares"] == [i * i for i in range(8)]
    logs = d.service.list_logs(run.run_id)
    assert [r.seq for r in logs] == list(range(len(logs)))
    assert sum(r.type == "joined" for r in logs) == 1
