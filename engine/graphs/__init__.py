"""Graph definitions shipped with the engine as JSON package data (``engine/graphs/<name>.json``)."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from engine.graph import loads_definition

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def graph_names() -> list[str]:
    """The names of the packaged graph definitions, for :func:`load_graph_json`."""
    return sorted(
        entry.name.removesuffix(".json")
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".json") and entry.is_file()
    )


def load_graph_json(name: str) -> dict[str, Any]:
    """Return the parsed definition of the packaged graph ``name`` (``"data_quality"``).

    Raises:
        ValueError: ``name`` is not a plain file name.
        FileNotFoundError: no packaged graph has that name.
    """
    name = name.removesuffix(".json")
    if not _NAME.match(name):
        raise ValueError(f"graph name {name!r} may hold only letters, digits, '_' and '-'")
    resource = resources.files(__name__).joinpath(f"{name}.json")
    if not resource.is_file():
        raise FileNotFoundError(f"no packaged graph {name!r}; known: {', '.join(graph_names())}")
    definition = loads_definition(resource.read_text(encoding="utf-8"))
    if not isinstance(definition, dict):
        raise ValueError(f"packaged graph {name!r} is not a JSON object")
    return definition
