"""Whole-graph validation: every problem at once, each naming its node or edge."""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from typing import Any

from pydantic import ValidationError

from engine import conditions
from engine.errors import InvalidGraphError, Problem
from engine.graph import (
    END,
    Graph,
    MapEdge,
    MapSpec,
    Node,
    ParallelEdge,
    RetryPolicy,
    duplicate_node_names,
    repeated_edge_sources,
)
from engine.hints import did_you_mean, unknown_tool
from engine.limits import MAX_GRAPH_DEPTH, MAX_RULES_PER_EDGE, json_depth, key_problem
from engine.registry import ToolRegistry

_EDGE_RULES = "list[EdgeRule]"
_EDGE_PARALLEL = "parallel"
_EDGE_MAP = "map"
_EDGE_SHAPE = 'an edge must be a node name or a list of rules such as {"when": {...}, "to": "node"}'


def _edge_forms(source: Any, names: list[str] | None = None) -> str:
    """What to write for the edge from ``source``: the accepted forms, and why a list of node names is not one."""
    first, second = [*names, "c"][:2] if names else ("b", "c")
    text = (
        f"edge from {str(source)!r} must be a node name ({_json(first)}), or a list of rules "
        f'[{{"when": {{...}}, "to": {_json(first)}}}, {{"to": {_json(second)}}}], '
        f'or parallel branches that meet at a join {{"parallel": [{_json(first)}, {_json(second)}], '
        f'"join": "node"}}, or a map over a list in the state {{"map": {{"items": "key", "as": "item", '
        f'"start": {_json(first)}, "join": "node"}}}}'
    )
    if names is not None:
        text += (
            "; a list of node names is not an edge: a run follows one edge at a time, so for nodes "
            f"that run one after another chain them ({_json(str(source))}: {_json(first)}, "
            f"{_json(first)}: {_json(second)}), to choose "
            'between them give rules with "when" conditions, and to run them at the same time give '
            f'{{"parallel": [{", ".join(_json(n) for n in names)}], "join": "node"}}'
        )
    return text


_NODE_FORMS = (
    'a node is a tool name ("dq.profile") or an object such as {"tool": "dq.profile", '
    '"retry": {"max_attempts": 3}, "timeout_seconds": 30, "catch": "node", "params": {...}}'
)


def _message(err: Any) -> str:
    """Pydantic's message, with the accepted forms of a node, or the closest field for an unknown one."""
    loc, message = err["loc"], err["msg"]
    if len(loc) == 2 and loc[0] == "nodes" and not isinstance(err["input"], dict | str):
        return _NODE_FORMS
    if err["type"] == "extra_forbidden":
        fields = _fields_at(loc[:-1])
        if fields:
            return f"{message}{did_you_mean(str(loc[-1]), fields)} (accepted: {', '.join(fields)})"
    return str(message)


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The fields of the model at ``loc`` (the graph, a node, a node's retry), or none."""
    if not loc:
        return list(Graph.model_fields)
    if loc[0] == "nodes" and len(loc) == 2:
        return list(Node.model_fields)
    if loc[0] == "nodes" and len(loc) == 3 and loc[2] == "retry":
        return list(RetryPolicy.model_fields)
    if loc[0] == "edges" and len(loc) == 3 and loc[2] == _EDGE_PARALLEL:
        return list(ParallelEdge.model_fields)
    if loc[0] == "edges" and len(loc) == 3 and loc[2] == _EDGE_MAP:
        return list(MapEdge.model_fields)
    if loc[0] == "edges" and len(loc) == 4 and loc[2:] == (_EDGE_MAP, "map"):
        return [field.alias or name for name, field in MapSpec.model_fields.items()]
    return []


def _json(name: str) -> str:
    return '"' + name.replace('"', '\\"') + '"'


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "graph"


def _raw_edge(raw: Any, source: Any) -> list[Any]:
    edges = raw.get("edges") if isinstance(raw, dict) else None
    edge = edges.get(source) if isinstance(edges, dict) else None
    return edge if isinstance(edge, list) else []


def _problems_of(exc: ValidationError, raw: Any = None) -> list[Problem]:
    """Pydantic's errors as problems, without the noise of the edge union.

    An edge is a union tagged by the input's shape (:data:`engine.graph.Edge`):
    pydantic reports errors under locations such as ``edges.a.list[EdgeRule].0.condition``
    or ``edges.a.map.map.items``. This drops the tag (``edges.a.map.items``), locates a rule as
    :func:`find_problems` does (``edges.a[0].when``, whichever spelling the
    condition used), and turns an edge of no accepted shape into one problem
    that lists the forms.
    """
    problems: list[Problem] = []
    listed_names: set[str] = set()
    for err in exc.errors():
        loc = err["loc"]
        if len(loc) == 2 and loc[0] == "edges" and err["type"] == "union_tag_not_found":
            problems.append(Problem(f"edges.{loc[1]}", f"{_EDGE_SHAPE}: {_edge_forms(loc[1])}"))
            continue
        if len(loc) >= 3 and loc[0] == "edges" and loc[2] in (_EDGE_PARALLEL, _EDGE_MAP):
            message = _message(err)
            problems.append(Problem(_where((loc[0], loc[1], *loc[3:])), message))
            continue
        if len(loc) >= 3 and loc[0] == "edges" and loc[2] == _EDGE_RULES:
            edge_at = f"edges.{loc[1]}"
            if len(loc) == 3:
                continue
            if len(loc) == 4 and isinstance(err["input"], str):
                if edge_at not in listed_names:
                    listed_names.add(edge_at)
                    names = [part for part in _raw_edge(raw, loc[1]) if isinstance(part, str)]
                    problems.append(Problem(edge_at, _edge_forms(loc[1], names)))
                continue
            index, *rest = loc[3:]
            fields = ["when" if part == "condition" and i == 0 else part for i, part in enumerate(rest)]
            problems.append(Problem(_where((f"{edge_at}[{index}]", *fields)), err["msg"]))
            continue
        problems.append(Problem(_where(loc), _message(err)))
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
        problems.extend(_problems_of(exc, raw))
        return None, problems


def parse_graph(raw: Any) -> Graph:
    """Build a :class:`Graph` from parsed JSON, turning pydantic's errors into :class:`Problem` s."""
    graph, problems = _parse(raw)
    if graph is None or problems:
        raise InvalidGraphError(problems)
    return graph


def find_problems(graph: Graph, registry: ToolRegistry) -> list[Problem]:
    """Every structural problem of ``graph``: names, tools, edges, conditions, branches, keys, reachability, exits."""
    problems: list[Problem] = []
    nodes = graph.nodes
    if graph.start_node not in nodes:
        problems.append(
            Problem(
                "start_node",
                f"start node {graph.start_node!r} is not a node{did_you_mean(graph.start_node, nodes)}",
            )
        )
    if END in nodes:
        problems.append(
            Problem(f"nodes.{END}", f"the name {END!r} is reserved for the edge target that ends a run")
        )
    for name, node in nodes.items():
        if node.tool is not None and node.tool not in registry:
            problems.append(Problem(f"nodes.{name}.tool", unknown_tool(node.tool, registry.names())))
        if node.catch is not None and node.catch not in nodes:
            problems.append(
                Problem(
                    f"nodes.{name}.catch",
                    f"catch leads to unknown node {node.catch!r}{did_you_mean(node.catch, nodes)}",
                )
            )
        expired = node.callback.catch if node.callback is not None else None
        if expired is not None and expired not in nodes:
            problems.append(
                Problem(
                    f"nodes.{name}.callback.catch",
                    f"the callback's time-out leads to unknown node {expired!r}{did_you_mean(expired, nodes)}",
                )
            )
    for source, edge in graph.edges.items():
        if source not in nodes:
            problems.append(
                Problem(f"edges.{source}", f"edge from unknown node {source!r}{did_you_mean(source, nodes)}")
            )
        if isinstance(edge, str):
            if edge not in nodes and edge != END:
                problems.append(
                    Problem(f"edges.{source}", f"edge to unknown node {edge!r}{did_you_mean(edge, nodes)}")
                )
            continue
        if not isinstance(edge, list):
            problems.extend(_fan_out_names(source, edge, nodes))
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
                problems.append(
                    Problem(where, f"edge to unknown node {rule.to!r}{did_you_mean(rule.to, nodes)}")
                )
            if default_at is not None:
                problems.append(
                    Problem(where, f"is never taken: rule {default_at} before it has no condition")
                )
            if rule.when is None:
                default_at = i if default_at is None else default_at
            else:
                problems.extend(Problem(where, msg) for msg in conditions.check(rule.when, "when"))
    problems.extend(_region_problems(graph))
    problems.extend(_key_problems(graph))
    if graph.start_node in nodes:
        problems.extend(_reachability_problems(graph))
    return problems


def _unknown(what: str, name: str, nodes: Collection[str]) -> str:
    return f"{what} is unknown node {name!r}{did_you_mean(name, nodes)}"


def _fan_out_names(source: str, edge: ParallelEdge | MapEdge, nodes: Collection[str]) -> list[Problem]:
    """Branch starts and joins that are no node, a join listed as a branch, repeated branches."""
    problems: list[Problem] = []
    if isinstance(edge, MapEdge):
        at, join, starts = (
            f"edges.{source}.map",
            edge.map.join,
            [(f"edges.{source}.map.start", edge.map.start)],
        )
    else:
        at, join = f"edges.{source}", edge.join
        starts = [(f"edges.{source}.parallel[{i}]", start) for i, start in enumerate(edge.parallel)]
    if join not in nodes:
        problems.append(Problem(f"{at}.join", _unknown(f"the join of {source!r}", join, nodes)))
    elif join == source:
        problems.append(Problem(f"{at}.join", f"{source!r} cannot be its own join"))
    seen: set[str] = set()
    for where, start in starts:
        if start == join:
            text = "the start of the map" if isinstance(edge, MapEdge) else "a branch"
            problems.append(
                Problem(
                    where, f"the join {join!r} of {source!r} is also {text}: a branch runs at least one node"
                )
            )
        elif start not in nodes:
            problems.append(Problem(where, _unknown(f"a branch of {source!r}", start, nodes)))
        elif start in seen:
            problems.append(Problem(where, f"branch {start!r} of {source!r} is listed more than once"))
        seen.add(start)
    return problems


def _branch(fan_out: str, start: str, graph: Graph) -> str:
    if isinstance(graph.edges.get(fan_out), MapEdge):
        return f"the branch of map {fan_out!r} (from {start!r})"
    return f"branch {start!r} of {fan_out!r}"


def _region_problems(graph: Graph) -> list[Problem]:
    """Per fan-out, what is wrong with its branches' regions (:meth:`Graph.region_of`).

    A branch must lead to its join and nowhere else out of its region, must not
    end the run, run its own fan-out node again or hold another fan-out node;
    the branches of a parallel share no node; only the fan-out node's edge enters
    a branch, at its start; the run does not start inside a branch.
    """
    problems: list[Problem] = []
    predecessors: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for name in graph.nodes:
        for target in graph.successors(name):
            if target in predecessors:
                predecessors[target].append(name)
    for fan_out in graph.fan_out_nodes():
        join = graph.join_of(fan_out)
        if join not in graph.nodes or join == fan_out:
            continue
        owner: dict[str, str] = {}
        regions = {start: r for start, r in graph.region_of(fan_out).items() if start in graph.nodes}
        for start, region in regions.items():
            branch = _branch(fan_out, start, graph)
            problems.extend(_exit_problems(graph, fan_out, start, region, branch))
            if fan_out in region:
                # The region then spans every branch: sharing and entering it are consequences of this.
                problems.append(
                    Problem(
                        f"edges.{fan_out}",
                        f"{branch} leads back to {fan_out!r}: a branch cannot run its own fan-out node again",
                    )
                )
                continue
            problems.extend(
                Problem(
                    f"edges.{inner}",
                    f"{branch} holds the fan-out node {inner!r}: parallel branches and maps inside a branch "
                    "are not supported yet",
                )
                for inner in graph.fan_out_nodes()
                if inner != fan_out and inner in region
            )
            problems.extend(
                Problem(
                    f"nodes.{name}",
                    f"{branch} holds the {graph.nodes[name].label} node {name!r}: waits and callbacks inside "
                    "a branch are not supported yet",
                )
                for name in sorted(region)
                if graph.nodes[name].wait is not None or graph.nodes[name].callback is not None
            )
            for name in sorted(region):
                other = owner.setdefault(name, start)
                if other != start:
                    problems.append(
                        Problem(
                            f"nodes.{name}",
                            f"node {name!r} is in branches {other!r} and {start!r} of {fan_out!r}; "
                            "branches of a parallel cannot share nodes",
                        )
                    )
            siblings = frozenset().union(*(r for s, r in regions.items() if s != start))
            problems.extend(_entry_problems(graph, fan_out, start, region, siblings, predecessors, branch))
    found = graph.branch_region(graph.start_node)
    if found is not None:
        problems.append(
            Problem(
                "start_node",
                f"start node {graph.start_node!r} is inside {_branch(found[0], found[1], graph)}; "
                "a run starts outside every branch",
            )
        )
    return problems


def _by_edges(graph: Graph, start: str, join: str) -> set[str]:
    """The nodes reachable from ``start`` by edges and rules alone (no catch), the join excluded."""
    seen: set[str] = set()
    queue = deque([start])
    while queue:
        name = queue.popleft()
        if name == join or name in seen or name not in graph.nodes:
            continue
        seen.add(name)
        queue.extend(_edge_targets(graph, name))
    return seen


def _exit_problems(
    graph: Graph, fan_out: str, start: str, region: frozenset[str], branch: str
) -> list[Problem]:
    """Nodes of the branch that end the run, or a branch that never reaches its join."""
    join = graph.join_of(fan_out) or ""
    problems: list[Problem] = []
    by_edges = _by_edges(graph, start, join)
    for name in sorted(region):
        if not graph.ends_at(name):
            continue
        message = f"{branch} can end the run at {name!r}; a branch must lead to its join {join!r}"
        if name not in by_edges:
            catches = sorted(n for n in region if graph.nodes[n].catch == name)
            message += (
                f" ({name!r} is in the branch because the catch of {', '.join(map(repr, catches))} leads "
                f"there: a catch inside a branch stays in it, and a failed branch follows the catch of {fan_out!r})"
            )
        problems.append(Problem(f"edges.{name}" if name in graph.edges else f"nodes.{name}", message))
    if not problems and not any(join in graph.successors(name) for name in region):
        problems.append(Problem(f"edges.{fan_out}", f"{branch} never reaches its join {join!r}"))
    return problems


def _entry_problems(
    graph: Graph,
    fan_out: str,
    start: str,
    region: frozenset[str],
    siblings: frozenset[str],
    predecessors: dict[str, list[str]],
    branch: str,
) -> list[Problem]:
    """Edges and catches from outside the branch into it; only the fan-out node's edge may enter, at the start."""
    problems: list[Problem] = []
    for name in sorted(region):
        for source in predecessors[name]:
            # An edge from a sibling branch makes the branches share nodes, reported by the caller.
            if source in region or source in siblings:
                continue
            by_edge = name in _edge_targets(graph, source)
            if source == fan_out and by_edge and name in graph.branch_starts(fan_out):
                if graph.nodes[source].catch != name:
                    continue
                by_edge = False
            problems.append(
                Problem(
                    f"edges.{source}" if by_edge else f"nodes.{source}.catch",
                    f"{'edge' if by_edge else 'catch'} from {source!r} leads into {branch} at {name!r}; "
                    "a branch is entered only by its fan-out node's edge, at its start",
                )
            )
    return problems


def _edge_targets(graph: Graph, source: str) -> list[str]:
    """The nodes ``source``'s edge (not its catch) leads to."""
    edge = graph.edges.get(source)
    if isinstance(edge, str):
        return [edge]
    if isinstance(edge, list):
        return [rule.to for rule in edge]
    join = graph.join_of(source)
    return graph.branch_starts(source) + ([join] if isinstance(edge, MapEdge) and join else [])


def _key_problems(graph: Graph) -> list[Problem]:
    """State keys a map or a reducer names: valid keys, distinct where they must be."""
    problems: list[Problem] = []
    collected: dict[str, str] = {}
    for source, edge in graph.edges.items():
        if not isinstance(edge, MapEdge):
            continue
        spec, at = edge.map, f"edges.{source}.map"
        named = [("items", spec.items), ("as", spec.as_)]
        if spec.index_as is not None:
            named.append(("index_as", spec.index_as))
        for field, key in named:
            problem = key_problem(key)
            if problem is not None:
                problems.append(Problem(f"{at}.{field}", problem))
        if spec.as_ == spec.items:
            problems.append(
                Problem(
                    f"{at}.as",
                    f"'as' ({spec.as_!r}) must differ from 'items': the element would hide the list",
                )
            )
        if spec.index_key in (spec.items, spec.as_):
            problems.append(
                Problem(
                    f"{at}.index_as",
                    f"the index key {spec.index_key!r} must differ from 'items' and 'as'",
                )
            )
        targets: dict[str, str] = {}
        for branch_key, target in spec.collect.items():
            for key in (branch_key, target):
                problem = key_problem(key)
                if problem is not None:
                    problems.append(Problem(f"{at}.collect", problem))
            if target in targets:
                problems.append(
                    Problem(
                        f"{at}.collect",
                        f"{targets[target]!r} and {branch_key!r} are both collected into {target!r}",
                    )
                )
            targets.setdefault(target, branch_key)
            collected.setdefault(target, source)
    for key in graph.reducers:
        problem = key_problem(key)
        if problem is not None:
            problems.append(Problem(f"reducers.{key}", problem))
        if key in collected:
            problems.append(
                Problem(
                    f"reducers.{key}",
                    f"{key!r} has a reducer and is also the list map {collected[key]!r} collects into; "
                    "give it one or the other",
                )
            )
    return problems


def _reachability_problems(graph: Graph) -> list[Problem]:
    known = graph.nodes.keys()
    forward: dict[str, list[str]] = {n: [s for s in graph.successors(n) if s in known] for n in known}
    for fan_out in graph.fan_out_nodes():
        join = graph.join_of(fan_out)
        if fan_out in forward and join in known:
            forward[fan_out].append(join)
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


def timeout_problems(graph: Graph, max_node_timeout: float) -> list[Problem]:
    """Nodes whose ``timeout_seconds`` is longer than a step may take (``max_node_timeout``)."""
    return [
        Problem(
            f"nodes.{name}.timeout_seconds",
            f"node {name!r} has timeout_seconds {node.timeout_seconds:g}, more than the {max_node_timeout:g}s "
            "a step may take (the step function's timeout less the time to start and commit a step)",
        )
        for name, node in graph.nodes.items()
        if node.timeout_seconds is not None and node.timeout_seconds > max_node_timeout
    ]


def validate_graph(raw: Any, registry: ToolRegistry, *, max_node_timeout: float | None = None) -> Graph:
    """Parse and check a graph definition; raise :class:`InvalidGraphError` listing every problem.

    A repeated node name does not stop the structural checks: they run on the
    graph as JSON loading left it (the last definition of each name).
    ``max_node_timeout`` bounds the nodes' ``timeout_seconds``.
    """
    graph, problems = _parse(raw)
    if graph is not None:
        problems.extend(find_problems(graph, registry))
        if max_node_timeout is not None:
            problems.extend(timeout_problems(graph, max_node_timeout))
    if graph is None or problems:
        raise InvalidGraphError(problems)
    return graph
