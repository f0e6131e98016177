"""Mermaid flowchart of a graph, conditional edges labelled with their conditions."""

from __future__ import annotations

import json
import re
from typing import Any

from engine.graph import END, Graph

_OP_WORDS = {"all": " and ", "any": " or "}


def describe_condition(condition: dict[str, Any]) -> str:
    """A short human form of a condition: ``anomaly_count > 2``, ``a and (b or not c)``."""
    for name, joiner in _OP_WORDS.items():
        if name in condition:
            parts = [describe_condition(c) for c in condition[name]]
            return "(" + joiner.join(parts) + ")" if len(parts) > 1 else parts[0]
    if "not" in condition:
        return f"not {describe_condition(condition['not'])}"
    if condition.get("op") in ("exists", "not_exists"):
        return f"{condition.get('key')} {condition['op'].replace('_', ' ')}"
    return f"{condition.get('key')} {condition.get('op')} {json.dumps(condition.get('value'))}"


_END_ID = "n__end"


def _base_id(name: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _node_ids(graph: Graph) -> dict[str, str]:
    """A Mermaid id per node: its name made safe, with a suffix where two names would collide."""
    ids: dict[str, str] = {}
    used = {_END_ID}
    for name in graph.nodes:
        base = candidate = _base_id(name)
        suffix = 1
        while candidate in used:
            suffix += 1
            candidate = f"{base}_{suffix}"
        ids[name] = candidate
        used.add(candidate)
    return ids


def _label(text: str) -> str:
    return text.replace('"', "#quot;").replace("|", "#124;")


def to_mermaid(graph: Graph) -> str:
    """A ``flowchart TD`` of the graph: the start node rounded, edges to the end to an ``end`` circle."""
    ids = _node_ids(graph)

    def _node_id(name: str) -> str:
        return f"{_END_ID}((end))" if name == END else ids.get(name) or _base_id(name)

    lines = ["flowchart TD"]
    for name, node in graph.nodes.items():
        text = f"{_label(name)}<br/><small>{_label(node.tool)}</small>"
        shape = f'(["{text}"])' if name == graph.start_node else f'["{text}"]'
        lines.append(f"    {_node_id(name)}{shape}")
    for source, edge in graph.edges.items():
        if isinstance(edge, str):
            lines.append(f"    {_node_id(source)} --> {_node_id(edge)}")
            continue
        if not isinstance(edge, list):
            continue
        for rule in edge:
            label = describe_condition(rule.when) if rule.when is not None else "otherwise"
            lines.append(f'    {_node_id(source)} -->|"{_label(label)}"| {_node_id(rule.to)}')
    for name, node in graph.nodes.items():
        if node.catch:
            lines.append(f'    {_node_id(name)} -.->|"on error"| {_node_id(node.catch)}')
    ends = [name for name in graph.nodes if name not in graph.edges]
    for name in ends:
        lines.append(f"    {_node_id(name)} --> {_node_id(END)}")
    return "\n".join(dict.fromkeys(lines)) + "\n"
