"""A graph workflow engine: tools are Python functions, workflows are JSON graphs.

The public surface: :func:`tool` and :class:`ToolContext` for writing tools,
:class:`Graph` for definitions, :class:`WorkflowService` for the use cases and
:class:`InProcessDriver` for running graphs in this process.

Names are imported on first use (PEP 562), so a handler that needs only
``engine.model`` does not pay for the in-memory adapters or the driver at cold start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "FakeClock": "engine.driver",
    "InProcessDriver": "engine.driver",
    "EngineError": "engine.errors",
    "InvalidGraphError": "engine.errors",
    "Problem": "engine.errors",
    "Graph": "engine.graph",
    "LogRecord": "engine.model",
    "LogType": "engine.model",
    "Run": "engine.model",
    "RunStatus": "engine.model",
    "StepMessage": "engine.model",
    "REGISTRY": "engine.registry",
    "ToolContext": "engine.registry",
    "ToolRegistry": "engine.registry",
    "load_tool_modules": "engine.registry",
    "tool": "engine.registry",
    "StepDisposition": "engine.service",
    "StepResult": "engine.service",
    "WorkflowService": "engine.service",
}

__all__ = [
    "REGISTRY",
    "EngineError",
    "FakeClock",
    "Graph",
    "InProcessDriver",
    "InvalidGraphError",
    "LogRecord",
    "LogType",
    "Problem",
    "Run",
    "RunStatus",
    "StepDisposition",
    "StepMessage",
    "StepResult",
    "ToolContext",
    "ToolRegistry",
    "WorkflowService",
    "load_tool_modules",
    "tool",
]

if TYPE_CHECKING:
    from engine.driver import FakeClock, InProcessDriver
    from engine.errors import EngineError, InvalidGraphError, Problem
    from engine.graph import Graph
    from engine.model import LogRecord, LogType, Run, RunStatus, StepMessage
    from engine.registry import REGISTRY, ToolContext, ToolRegistry, load_tool_modules, tool
    from engine.service import StepDisposition, StepResult, WorkflowService


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
