"""Mermaid flowchart of a graph, conditional edges labelled with their conditions, branches in subgraphs."""

from __future__ import annotations

import json
import re
from typing import Any

from engine.graph import END, Graph, MapEdge, Node, ParallelEdge

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


def _seconds(value: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if value >= size and value % size == 0:
            return f"{value / size:g} {unit}"
    return f"{value:g} s"


def _kind(node: Node) -> str:
    """The node's second line: its tool, or what it waits for."""
    if node.wait is not None:
        spec = node.wait
        if spec.seconds is not None:
            return f"wait {_seconds(spec.seconds)}"
        if spec.until is not None:
            return f"wait until {spec.until.isoformat()}"
        return f"wait until state.{spec.until_key}"
    if node.callback is not None:
        return f"callback, times out after {_seconds(node.callback.timeout_seconds)}"
    return node.label


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


def _subgraphs(graph: Graph) -> list[tuple[str, list[str]]]:
    """One ``(title, member nodes)`` per branch of each fan-out; a node is drawn in the first branch holding it."""
    placed: set[str] = set()
    out: list[tuple[str, list[str]]] = []
    for fan_out in graph.fan_out_nodes():
        edge = graph.fan_out(fan_out)
        for start, region in graph.region_of(fan_out).items():
            title = f"for each {edge.map.as_}" if isinstance(edge, MapEdge) else f"branch {start}"
            members = [name for name in graph.nodes if name in region and name not in placed]
            placed.update(members)
            if members:
                out.append((title, members))
    return out


def to_mermaid(graph: Graph) -> str:
    """A ``flowchart TD`` of the graph: the start node rounded, edges to the end to an ``end`` circle.

    A fan-out node has dashed arrows to its branch starts, labelled ``parallel``
    or ``map over <items> (max <n>)`` (and ``no items`` to the join); each branch is
    a ``subgraph`` (``branch <start>``, ``for each <as>``); a join is a hexagon.
    """
    ids = _node_ids(graph)

    def _node_id(name: str) -> str:
        return f"{_END_ID}((end))" if name == END else ids.get(name) or _base_id(name)

    joins = {join for join in map(graph.join_of, graph.fan_out_nodes()) if join is not None}

    def _declare(name: str, indent: str) -> str:
        node = graph.nodes[name]
        text = f"{_label(name)}<br/><small>{_label(_kind(node))}</small>"
        if name == graph.start_node:
            shape = f'(["{text}"])'
        elif name in joins:
            shape = f'{{{{"{text}"}}}}'
        elif node.wait is not None:
            shape = f'[/"{text}"/]'
        elif node.callback is not None:
            shape = f'[["{text}"]]'
        else:
            shape = f'["{text}"]'
        return f"{indent}{_node_id(name)}{shape}"

    subgraphs = _subgraphs(graph)
    in_subgraph = {name for _, members in subgraphs for name in members}
    lines = ["flowchart TD"]
    lines.extend(_declare(name, "    ") for name in graph.nodes if name not in in_subgraph)
    for i, (title, members) in enumerate(subgraphs, start=1):
        lines.append(f'    subgraph sg_{i}["{_label(title)}"]')
        lines.extend(_declare(name, "        ") for name in members)
        lines.append("    end")
    arrows: list[str] = []
    for source, edge in graph.edges.items():
        if isinstance(edge, str):
            arrows.append(f"    {_node_id(source)} --> {_node_id(edge)}")
        elif isinstance(edge, list):
            for rule in edge:
                label = describe_condition(rule.when) if rule.when is not None else "otherwise"
                arrows.append(f'    {_node_id(source)} -->|"{_label(label)}"| {_node_id(rule.to)}')
        elif isinstance(edge, ParallelEdge):
            arrows.extend(
                f'    {_node_id(source)} -.->|"parallel"| {_node_id(start)}' for start in edge.parallel
            )
        else:
            spec = edge.map
            label = _label(f"map over {spec.items} (max {spec.max_concurrency})")
            arrows.append(f'    {_node_id(source)} -.->|"{label}"| {_node_id(spec.start)}')
            arrows.append(f'    {_node_id(source)} -.->|"no items"| {_node_id(spec.join)}')
    for name, node in graph.nodes.items():
        if node.catch:
            arrows.append(f'    {_node_id(name)} -.->|"on error"| {_node_id(node.catch)}')
        if node.callback is not None and node.callback.catch:
            arrows.append(f'    {_node_id(name)} -.->|"timed out"| {_node_id(node.callback.catch)}')
    ends = [name for name in graph.nodes if name not in graph.edges]
    for name in ends:
        arrows.append(f"    {_node_id(name)} --> {_node_id(END)}")
    return "\n".join([*lines, *dict.fromkeys(arrows)]) + "\n"
