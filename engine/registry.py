"""The tool registry: Python functions that graph nodes call by name.

A tool takes ``(state, ctx)`` and returns a partial update (a dict) that is
merged into the run's state, key by key at the top level. It may be ``async``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from engine.errors import ToolNotFoundError
from engine.hints import did_you_mean, with_pointer

ToolResult = dict[str, Any] | None
ToolFunc = Callable[[dict[str, Any], "ToolContext"], ToolResult | Awaitable[ToolResult]]
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TOOL_MODULES = ("engine.tools.dq",)


@dataclass(frozen=True)
class ToolContext:
    """What a tool knows about the call it is part of.

    ``idempotency_key`` is ``"{run_id}:{step}"`` (in a branch,
    ``"{run_id}:{fan-out step}:{branch}:{branch step}"``): the same for every
    attempt of a step, so a side effect outside the state can be made once per
    step. ``params`` is the node's ``params`` from the graph (a copy), or ``None``.
    """

    run_id: str
    graph_id: str
    node: str
    step: int
    attempt: int
    params: Any = None
    key: str | None = None

    @property
    def idempotency_key(self) -> str:
        return self.key if self.key is not None else f"{self.run_id}:{self.step}"


@dataclass(frozen=True)
class Tool:
    name: str
    func: ToolFunc
    description: str
    is_async: bool

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "async": self.is_async}


class ToolRegistry:
    """A name-to-tool map. ``engine.tool`` registers into :data:`REGISTRY`."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(self, name: str, func: ToolFunc, description: str | None = None) -> Tool:
        if not name or not isinstance(name, str):
            raise ValueError("a tool needs a non-empty name")
        existing = self._tools.get(name)
        if existing is not None and existing.func is not func:
            raise ValueError(f"tool {name!r} is already registered by {existing.func.__module__}")
        doc = (description or "").strip() or (inspect.getdoc(func) or "").strip()
        entry = Tool(name, func, doc.splitlines()[0] if doc else "", _is_async(func))
        self._tools[name] = entry
        return entry

    def tool(self, name: str, *, description: str | None = None) -> Callable[[F], F]:
        def decorate(func: F) -> F:
            self.register(name, cast(ToolFunc, func), description)
            return func

        return decorate

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise ToolNotFoundError(
                f"no tool named {name!r}{with_pointer(did_you_mean(name, self._tools))}", tool=name
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def names(self) -> list[str]:
        return sorted(self._tools)

    def describe(self) -> list[dict[str, Any]]:
        return [self._tools[name].describe() for name in self.names()]


def _is_async(func: Callable[..., Any]) -> bool:
    """Whether calling ``func`` gives a coroutine: an ``async def`` function, or an object whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(func):
        return True
    return inspect.iscoroutinefunction(type(func).__call__)


REGISTRY = ToolRegistry()


def tool(name: str, *, description: str | None = None) -> Callable[[F], F]:
    """Register a function as a tool in the default registry.

    Example::

        @tool("dq.profile", description="Profile the dataset")
        def profile(state: dict, ctx: ToolContext) -> dict:
            return {"profile": ...}
    """
    return REGISTRY.tool(name, description=description)


def configured_tool_modules(modules: str | None, builtin_tools: str | None = None) -> tuple[str, ...]:
    """The modules to load: the built-in ones (:data:`DEFAULT_TOOL_MODULES`), then those of ``modules``.

    ``modules`` is ``WORKFLOW_TOOL_MODULES`` (comma-separated, added to the
    built-ins); ``builtin_tools`` is ``WORKFLOW_BUILTIN_TOOLS``: ``false`` (or
    ``0``, ``no``, ``off``) leaves the built-ins out. Each module appears once.
    """
    keep_builtins = (builtin_tools or "true").strip().lower() not in ("false", "0", "no", "off")
    names = [*(DEFAULT_TOOL_MODULES if keep_builtins else ()), *(modules or "").split(",")]
    return tuple(dict.fromkeys(name.strip() for name in names if name.strip()))


def load_tool_modules(modules: Iterable[str] = DEFAULT_TOOL_MODULES) -> None:
    """Import the modules that register tools (``WORKFLOW_TOOL_MODULES`` in the handlers)."""
    for name in modules:
        if name.strip():
            importlib.import_module(name.strip())
