"""Whole-graph validation: every problem at once, each naming its node or edge."""

from __future__ import annotations

from collections import deque
from typing import Any

from pydantic import ValidationError

from engine import conditions
from engine.errors import InvalidGraphError, Problem
from engine.graph import END, Graph, duplicate_node_names, repeated_edge_sources
from engine.limits import MAX_GRAPH_DEPTH, MAX_RULES_PER_EDGE, json_depth
from engine.registry import ToolRegistry

_EDGE_NAME = "str"
_EDGE_RULES = "list[EdgeRule]"
_EDGE_SHAPE = 'an edge must be a node name or a list of rules such as {"when": {...}, "to": "node"}'


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "graph"


def _problems_of(exc: ValidationError) -> list[Problem]:
    """Pydantic's errors as problems, without the noise of the edge union.

    An edge is ``str | list[EdgeRule]``: pydantic reports a failing edge once per
    member of the union, under locations such as ``edges.a.str`` and
    ``edges.a.list[EdgeRule].0.condition``. This keeps the errors of the member
    the input was meant for (a list means rules), locates a rule as
    :func:`find_problems` does (``edges.a[0].when``, whichever spelling the
    condition used), and turns an edge that is neither a string nor a list into
    one problem.
    """
    problems: list[Problem] = []
    for err in exc.errors():
        loc = err["loc"]
        if len(loc) >= 3 and loc[0] == "edges" and loc[2] in (_EDGE_NAME, _EDGE_RULES):
            edge_at = f"edges.{loc[1]}"
            if loc[2] == _EDGE_NAME:
                if not isinstance(err["input"], list):
                    problems.append(Problem(edge_at, _EDGE_SHAPE))
                continue
            if len(loc) == 3:
                continue
            index, *rest = loc[3:]
            fields = ["when" if part == "condition" and i == 0 else part for i, part in enumerate(rest)]
            problems.append(Problem(_where((f"{edge_at}[{index}]", *fields)), err["msg"]))
            continue
        problems.append(Problem(_where(loc), err["msg"]))
    return problems


def _parse(raw: Any) -> tuple[Graph | None, list[Problem]]:
    """The graph (``None`` if its fields do not fit the model) and the problems found on the way."""
    if isinstance(raw, Graph):
        return raw, []
    depth = json_depth(raw)
    if depth > MAX_GRAPH_DEPTH:
        return None, [
            Problem("graph", f"the definition nests {depth} levels deep; the limit is {MAX_GRAPH_DEPTH}")
        ]
    problems = [
        Problem(f"nodes.{name}", "node name is used more than once") for name in duplicate_node_names(raw)
    ]
    problems.extend(
        Problem(
            f"edges.{name}",
            "edges from this node are given more than once; give one edge or one list of rules",
        )
        for name in repeated_edge_sources(raw)
    )
    try:
        return Graph.model_validate(raw), problems
    except ValidationError as exc:
        problems.extend(_problems_of(exc))
        return None, problems


def parse_graph(raw: Any) -> Graph:
    """Build a :class:`Graph` from parsed JSON, turning pydantic's errors into :class:`Problem` s."""
    graph, problems = _parse(raw)
    if graph is None or problems:
        raise InvalidGraphError(problems)
    return graph


def find_problems(graph: Graph, registry: ToolRegistry) -> list[Problem]:
    """Every structural problem of ``graph``: names, tools, edges, conditions, reachability, exits."""
    problems: list[Problem] = []
    nodes = graph.nodes
    if graph.start_node not in nodes:
        problems.append(Problem("start_node", f"start node {graph.start_node!r} is not a node"))
    if END in nodes:
        problems.append(
            Problem(f"nodes.{END}", f"the name {END!r} is reserved for the edge target that ends a run")
        )
    for name, node in nodes.items():
        if node.tool not in registry:
            problems.append(Problem(f"nodes.{name}.tool", f"unknown tool {node.tool!r}"))
        if node.catch is not None and node.catch not in nodes:
            problems.append(Problem(f"nodes.{name}.catch", f"catch leads to unknown node {node.catch!r}"))
    for source, edge in graph.edges.items():
        if source not in nodes:
            problems.append(Problem(f"edges.{source}", f"edge from unknown node {source!r}"))
        if isinstance(edge, str):
            if edge not in nodes and edge != END:
                problems.append(Problem(f"edges.{source}", f"edge to unknown node {edge!r}"))
            continue
        if not edge:
            problems.append(
                Problem(f"edges.{source}", "has no rules; leave the node out of edges to end the run there")
            )
        if len(edge) > MAX_RULES_PER_EDGE:
            problems.append(
                Problem(f"edges.{source}", f"has {len(edge)} rules; the limit is {MAX_RULES_PER_EDGE}")
            )
            continue
        default_at: int | None = None
        for i, rule in enumerate(edge):
            where = f"edges.{source}[{i}]"
            if rule.to not in nodes and rule.to != END:
                problems.append(Problem(where, f"edge to unknown node {rule.to!r}"))
            if default_at is not None:
                problems.append(
                    Problem(where, f"is never taken: rule {default_at} before it has no condition")
                )
            if rule.when is None:
                default_at = i if default_at is None else default_at
            else:
                problems.extend(Problem(where, msg) for msg in conditions.check(rule.when, "when"))
    if graph.start_node in nodes:
        problems.extend(_reachability_problems(graph))
    return problems


def _reachability_problems(graph: Graph) -> list[Problem]:
    known = graph.nodes.keys()
    forward: dict[str, list[str]] = {n: [s for s in graph.successors(n) if s in known] for n in known}
    reachable = _closure([graph.start_node], forward)
    problems = [
        Problem(f"nodes.{n}", f"node is unreachable from start node {graph.start_node!r}")
        for n in known
        if n not in reachable
    ]
    # A node with an edge to an unknown node is reported as such; it is not also called a trap.
    ends = [n for n in known if graph.ends_at(n) or any(t not in known for t in graph.successors(n))]
    backward: dict[str, list[str]] = {n: [] for n in known}
    for source, targets in forward.items():
        for target in targets:
            backward[target].append(source)
    can_end = _closure(ends, backward)
    trapped = sorted(n for n in reachable if n not in can_end)
    if trapped:
        problems.append(
            Problem(
                "edges",
                f"no path leads to an end from {', '.join(map(repr, trapped))}: a loop needs an exit "
                "(an edge to __end__ or to a node without outgoing edges)",
            )
        )
    return problems


def _closure(start: list[str], links: dict[str, list[str]]) -> set[str]:
    seen = set(start)
    queue = deque(start)
    while queue:
        for nxt in links.get(queue.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def validate_graph(raw: Any, registry: ToolRegistry) -> Graph:
    """Parse and check a graph definition; raise :class:`InvalidGraphError` listing every problem.

    A repeated node name does not stop the structural checks: they run on the
    graph as JSON loading left it (the last definition of each name).
    """
    graph, problems = _parse(raw)
    if graph is not None:
        problems.extend(find_problems(graph, registry))
    if graph is None or problems:
        raise InvalidGraphError(problems)
    return graph
