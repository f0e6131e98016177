"""The tool runners: a forked child answers like an in-process call, and a tool that kills, hangs or hogs costs only its attempt."""

from __future__ import annotations

import os
from typing import Any

import pytest

from engine.errors import ToolMemoryExhausted, ToolProcessDied, ToolTimeoutError
from engine.lazystate import LazyState
from engine.registry import Tool, ToolContext, ToolRegistry
from engine.runner import IN_PROCESS, ForkRunner
from tests.support import tools as test_tools

CTX = ToolContext("run", "graph", "node", 0, 1)
MB = 1024 * 1024


class Unpicklable(Exception):
    def __init__(self, message: str, handle: Any) -> None:
        super().__init__(message)
        self.handle = handle


def make(func: Any, name: str = "t.x") -> Tool:
    registry = ToolRegistry()
    registry.register(name, func)
    return registry.get(name)


def registered(name: str) -> Tool:
    from engine.registry import REGISTRY

    assert test_tools  # its tools are registered in the default registry
    return REGISTRY.get(name)


def test_a_forked_tool_returns_its_state_updates() -> None:
    tool = make(lambda state, ctx: {"pid": os.getpid(), "seen": state["n"], "node": ctx.node})
    result = ForkRunner().run(tool, {"n": 4}, CTX, 10)
    assert result["seen"] == 4 and result["node"] == "node"
    assert result["pid"] != os.getpid()


def test_a_forked_tool_changes_nothing_in_the_parent() -> None:
    state: dict[str, Any] = {"items": [1]}

    def mutate(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        state["items"].append(2)
        return {}

    ForkRunner().run(make(mutate), state, CTX, 10)
    assert state == {"items": [1]}


def test_a_forked_tools_exception_is_raised_with_its_type_and_message() -> None:
    def fail(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        ForkRunner().run(make(fail), {}, CTX, 10)


def test_an_exception_that_cannot_be_pickled_keeps_its_type_name() -> None:
    def fail(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise Unpicklable("no pickle", lambda: None)

    with pytest.raises(Exception, match="no pickle") as caught:
        ForkRunner().run(make(fail), {}, CTX, 10)
    assert type(caught.value).__name__ == "Unpicklable"


def test_a_tool_that_kills_its_process_fails_with_the_signal() -> None:
    with pytest.raises(ToolProcessDied, match=r"the tool's process died: signal 9 \(SIGKILL\)"):
        ForkRunner().run(registered("test.die"), {}, CTX, 10)


def test_a_tool_that_exits_fails_with_its_exit_status() -> None:
    with pytest.raises(ToolProcessDied, match="exit status 7"):
        ForkRunner().run(registered("test.exit"), {"code": 7}, CTX, 10)


def test_a_tool_raising_a_base_exception_fails_as_a_dead_process() -> None:
    with pytest.raises(ToolProcessDied, match="WorkerCrash: crashed at"):
        ForkRunner().run(registered("test.crash"), {}, CTX, 10)


def test_a_hanging_tool_is_killed_at_the_time_limit() -> None:
    with pytest.raises(ToolTimeoutError, match=r"ran longer than 0\.3s"):
        ForkRunner().run(registered("test.hang"), {"hang_seconds": 60}, CTX, 0.3)


def test_a_tool_that_exhausts_its_memory_fails_with_memory_exhausted() -> None:
    with pytest.raises(ToolMemoryExhausted, match="ran out of memory"):
        ForkRunner(memory_bytes=128 * MB).run(registered("test.hog"), {}, CTX, 60)


def test_the_parent_goes_on_after_a_child_died() -> None:
    runner = ForkRunner()
    with pytest.raises(ToolProcessDied):
        runner.run(registered("test.die"), {}, CTX, 10)
    assert runner.run(registered("test.inc"), {"i": 1}, CTX, 10) == {"i": 2}


def test_an_async_tool_runs_in_the_child_too() -> None:
    async def async_tool(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"pid": os.getpid()}

    assert ForkRunner().run(make(async_tool), {}, CTX, 10)["pid"] != os.getpid()


def test_the_in_process_runner_calls_the_tool_here() -> None:
    tool = make(lambda state, ctx: {"pid": os.getpid()})
    assert IN_PROCESS.run(tool, {}, CTX, None) == {"pid": os.getpid()}


def test_a_lazy_state_is_loaded_in_the_parent_before_the_fork() -> None:
    parent = os.getpid()
    loads: list[int] = []

    def load(keys: list[str]) -> dict[str, Any]:
        loads.append(os.getpid())
        return {key: key.upper() for key in keys}

    def read(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"kind": type(state).__name__, "a": state["a"], "b": state["b"]}

    result = ForkRunner().run(make(read), LazyState(["a", "b"], load), CTX, 10)
    assert result == {"kind": "dict", "a": "A", "b": "B"}
    assert loads == [parent]
