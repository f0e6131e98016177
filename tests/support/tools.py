"""Tools for the integration and end-to-end tests, registered in the default registry.

Handlers load them through ``WORKFLOW_TOOL_MODULES``, as a deployment loads its own tools.
"""

from __future__ import annotations

import os
import resource
import signal
import time
from pathlib import Path
from typing import Any

from engine.registry import ToolContext, tool


@tool("test.inc", description="Add 1 to i")
def inc(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"i": int(state.get("i", 0)) + 1}


@tool("test.flaky", description="Fail the first attempt of each step, then succeed")
def flaky(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    if ctx.attempt == 1:
        raise ConnectionError(f"transient failure at {ctx.idempotency_key}")
    return {"flaky_ok": ctx.attempt, "flaky_key": ctx.idempotency_key}


@tool("test.big", description="Write a string of state['size'] bytes")
def big(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"blob": "x" * int(state["size"])}


@tool("test.deep", description="Write a list nested state['depth'] levels deep")
def deep(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    value: Any = 0
    for _ in range(int(state["depth"])):
        value = [value]
    return {"deep": value}


@tool("test.keys", description="Write state['count'] top-level keys")
def keys(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {f"k{i}": i for i in range(int(state["count"]))}


@tool("test.noop", description="Change nothing")
def noop(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {}


def loop_graph(loops: int, name: str = "counter") -> dict[str, Any]:
    """``a -> b -> c``, back to ``a`` while ``i < loops``: ``3 * loops`` steps from ``i = 0``."""
    return {
        "name": name,
        "start_node": "a",
        "nodes": {"a": {"tool": "test.inc"}, "b": {"tool": "test.noop"}, "c": {"tool": "test.noop"}},
        "edges": {
            "a": "b",
            "b": "c",
            "c": [{"when": {"key": "i", "op": "<", "value": loops}, "to": "a"}, {"to": "__end__"}],
        },
    }


LOOP_GRAPH = loop_graph(3)

FLAKY_GRAPH: dict[str, Any] = {
    "name": "flaky",
    "start_node": "try",
    "nodes": {"try": {"tool": "test.flaky", "retry": {"max_attempts": 3, "interval_seconds": 1}}},
}


class WorkerCrash(BaseException):
    """Escapes the engine and Powertools' batch processor: the whole invocation fails, as when a Lambda dies.

    Only the local stack's step environments should run the tools that raise it.
    """


@tool("test.crash_once", description="Crash the step's invocation on its first delivery, then succeed")
def crash_once(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Leaves ``{run_id}-{step}`` in ``state['crash_dir']`` when it crashes, so a redelivery succeeds."""
    marker = Path(state["crash_dir"]) / f"{ctx.run_id}-{ctx.step}"
    if not marker.exists():
        marker.touch()
        raise WorkerCrash(f"crashed at {ctx.idempotency_key}")
    return {"recovered_at": ctx.step}


@tool("test.crash", description="Crash the step's invocation on every delivery")
def crash(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    raise WorkerCrash(f"crashed at {ctx.idempotency_key}")


@tool("test.gate", description="Wait until the file state['gate'] exists")
def gate(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Holds the run at this node until the test creates the file (at most ``state['gate_timeout']`` s, default 20).

    Creates the file ``state['gate_reached']``, if given, on entering.
    """
    if state.get("gate_reached"):
        Path(state["gate_reached"]).touch()
    path = Path(state["gate"])
    deadline = time.monotonic() + float(state.get("gate_timeout", 20))
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.02)
    return {"gate_passed": True}


@tool("test.die", description="Kill the tool's own process with SIGKILL")
def die(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


@tool("test.exit", description="End the tool's own process with os._exit(state['code'])")
def exit_now(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    os._exit(int(state.get("code", 3)))


@tool("test.hang", description="Sleep state['hang_seconds'] (default 3600)")
def hang(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    time.sleep(float(state.get("hang_seconds", 3600)))
    return {"woke": True}


HOG_CHUNK = 32 * 1024 * 1024


@tool("test.hog", description="Allocate memory until it runs out")
def hog(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Allocates until ``MemoryError`` under an address-space limit (an isolated attempt).

    Without one (in-process) it does what Lambda does to a function that exhausts
    its memory, kill the process, rather than exhaust the shared test machine's memory.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        os.kill(os.getpid(), signal.SIGKILL)
    held = []
    while True:
        held.append(bytearray(HOG_CHUNK))


@tool("test.tag", description="Append the node's name to the list at 'path' and add 1 to 'count'")
def tag(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"path": [ctx.node], "count": 1, f"{ctx.node}_done": True}


@tool("test.square", description="Square the map item at 'item' (its index at 'item_index')")
def square(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"square": state["item"] ** 2, "total": state["item"], "where": state["item_index"]}


@tool("test.items", description="Put the list 0 .. state['n'] - 1 at 'items'")
def items(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"items": list(range(int(state.get("n", 10))))}


@tool("test.fail", description="Raise ValueError")
def fail(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    raise ValueError(f"{ctx.node} failed on purpose")


def parallel_graph(branches: int = 2, name: str = "parallel") -> dict[str, Any]:
    """``split`` fans out to ``b0 .. b{n-1}`` (each one node), joined at ``merge``; reducers on ``path`` and ``count``."""
    names = [f"b{i}" for i in range(branches)]
    return {
        "name": name,
        "start_node": "split",
        "nodes": {"split": "test.noop", **{n: "test.tag" for n in names}, "merge": "test.noop"},
        "edges": {
            "split": {"parallel": names, "join": "merge"},
            **{n: "merge" for n in names},
            "merge": "__end__",
        },
        "reducers": {"path": "extend", "count": "sum"},
    }


def map_graph(max_concurrency: int = 10, name: str = "squares") -> dict[str, Any]:
    """``make`` puts ``n`` items in the state, ``square`` runs per item, ``done`` joins; squares collected in order."""
    return {
        "name": name,
        "start_node": "make",
        "nodes": {"make": "test.items", "square": "test.square", "done": "test.noop"},
        "edges": {
            "make": {
                "map": {
                    "items": "items",
                    "start": "square",
                    "join": "done",
                    "max_concurrency": max_concurrency,
                    "collect": {"square": "squares", "where": "order"},
                }
            },
            "square": "done",
            "done": "__end__",
        },
        "reducers": {"total": "sum"},
        "max_steps": 10_000,
    }
