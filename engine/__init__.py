"""A graph workflow engine: tools are Python functions, workflows are JSON graphs.

The public surface: :func:`tool` and :class:`ToolContext` for writing tools,
:class:`Graph` for definitions, :class:`WorkflowService` for the use cases and
:class:`InProcessDriver` for running graphs in this process.
"""

from engine.driver import FakeClock, InProcessDriver
from engine.errors import EngineError, InvalidGraphError, Problem
from engine.graph import Graph
from engine.model import LogRecord, LogType, Run, RunStatus, StepMessage
from engine.registry import REGISTRY, ToolContext, ToolRegistry, load_tool_modules, tool
from engine.service import StepDisposition, StepResult, WorkflowService

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
