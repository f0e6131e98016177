"""The tool registry: registering, describing and loading tools."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import engine.registry
from engine import ToolContext, ToolRegistry, load_tool_modules, tool
from engine.errors import NotFoundError, ToolNotFoundError
from engine.registry import DEFAULT_TOOL_MODULES, configured_tool_modules


def plain(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    """Returns nothing new.

    More detail that the listing leaves out.
    """
    return {}


async def waits(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {"waited": True}


def test_register_and_get() -> None:
    registry = ToolRegistry()
    entry = registry.register("x.plain", plain)
    assert registry.get("x.plain") is entry
    assert entry.func is plain
    assert entry.name == "x.plain"
    assert not entry.is_async
    assert "x.plain" in registry
    assert "x.other" not in registry


def test_unknown_tool_is_a_not_found_error() -> None:
    with pytest.raises(ToolNotFoundError, match=r"no tool named 'x\.nope'") as caught:
        ToolRegistry().get("x.nope")
    assert isinstance(caught.value, NotFoundError)
    assert caught.value.details == {"tool": "x.nope"}


def test_a_second_different_function_under_the_same_name_is_rejected() -> None:
    registry = ToolRegistry()
    registry.register("x.tool", plain)
    with pytest.raises(ValueError, match=r"'x\.tool' is already registered"):
        registry.register("x.tool", waits)
    assert registry.get("x.tool").func is plain


def test_registering_the_same_function_again_is_harmless() -> None:
    registry = ToolRegistry()
    registry.register("x.tool", plain)
    registry.register("x.tool", plain, description="Now described")
    assert registry.get("x.tool").description == "Now described"
    assert registry.names() == ["x.tool"]


def test_a_tool_needs_a_name() -> None:
    with pytest.raises(ValueError, match="non-empty name"):
        ToolRegistry().register("", plain)


def test_listing_has_names_in_order_with_descriptions() -> None:
    registry = ToolRegistry()

    @registry.tool("b.second", description="The second one")
    def second(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {}

    registry.register("a.first", plain)
    registry.register("c.async", waits)
    registry.register("d.blank", plain, description="   ")
    assert registry.names() == ["a.first", "b.second", "c.async", "d.blank"]
    assert registry.describe() == [
        {"name": "a.first", "description": "Returns nothing new.", "async": False},
        {"name": "b.second", "description": "The second one", "async": False},
        {"name": "c.async", "description": "", "async": True},
        {"name": "d.blank", "description": "Returns nothing new.", "async": False},
    ]


def test_the_decorator_returns_the_function_unchanged() -> None:
    registry = ToolRegistry()
    decorated = registry.tool("x.plain")(plain)
    assert decorated is plain


def test_async_callables_are_recognised() -> None:
    class AsyncTool:
        async def __call__(self, state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
            return {}

    registry = ToolRegistry()
    assert registry.register("x.async_fn", waits).is_async
    assert registry.register("x.async_obj", AsyncTool()).is_async


def test_module_level_tool_registers_in_the_default_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = ToolRegistry()
    monkeypatch.setattr(engine.registry, "REGISTRY", fresh)

    @tool("x.default", description="In the default registry")
    def default(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {}

    assert fresh.get("x.default").func is default


def test_idempotency_key_is_run_and_step() -> None:
    ctx = ToolContext(run_id="r1", graph_id="g", node="n", step=4, attempt=3)
    assert ctx.idempotency_key == "r1:4"
    assert ToolContext("r1", "g", "n", 4, 1).idempotency_key == ctx.idempotency_key


def test_load_tool_modules_imports_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = ToolRegistry()
    monkeypatch.setattr(engine.registry, "REGISTRY", fresh)
    package = tmp_path / "unit_tools_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "stages.py").write_text(
        textwrap.dedent(
            """
            from engine import tool

            @tool("loaded.stage", description="Loaded by name")
            def stage(state, ctx):
                return {"loaded": True}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "unit_tools_pkg.stages", raising=False)
    load_tool_modules([" unit_tools_pkg.stages ", "", "  "])
    assert "unit_tools_pkg.stages" in sys.modules
    assert fresh.describe() == [{"name": "loaded.stage", "description": "Loaded by name", "async": False}]
    load_tool_modules(["unit_tools_pkg.stages"])
    assert fresh.names() == ["loaded.stage"]
    monkeypatch.delitem(sys.modules, "unit_tools_pkg.stages")
    monkeypatch.delitem(sys.modules, "unit_tools_pkg")


def test_load_tool_modules_fails_loudly_for_a_missing_module() -> None:
    with pytest.raises(ModuleNotFoundError):
        load_tool_modules(["no_such_tools_module_here"])


def test_an_unknown_tool_names_the_closest_and_points_to_the_list() -> None:
    registry = ToolRegistry()
    registry.register("dq.profile", lambda state, ctx: None)
    with pytest.raises(ToolNotFoundError) as caught:
        registry.get("dq.profil")
    assert "did you mean 'dq.profile'?" in caught.value.message
    assert "GET /tools (or wf tools)" in caught.value.message


def test_tool_modules_are_added_to_the_builtins() -> None:
    assert configured_tool_modules(None) == DEFAULT_TOOL_MODULES
    assert configured_tool_modules("my.tools, other.tools") == (
        *DEFAULT_TOOL_MODULES,
        "my.tools",
        "other.tools",
    )
    assert configured_tool_modules(f"{DEFAULT_TOOL_MODULES[0]},my.tools") == (
        *DEFAULT_TOOL_MODULES,
        "my.tools",
    )


@pytest.mark.parametrize("off", ["false", "FALSE", "0", "no", "off"])
def test_builtin_tools_can_be_left_out(off: str) -> None:
    assert configured_tool_modules("my.tools", off) == ("my.tools",)
    assert configured_tool_modules(None, off) == ()
