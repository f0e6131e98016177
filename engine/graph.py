"""The graph definition: nodes that call tools, edges, conditional edges, fan-outs, retry and catch.

The JSON format (docs/architecture.md; parallel branches and maps in docs/parallel.md)
loads as written. Two conveniences for users of the earlier FastAPI versions:
``nodes`` may be a list of ``{"name": ..., "tool": ...}`` objects, and a node may
be given as a bare tool name string.
Structural checks that need the tool registry or the whole graph live in
:mod:`engine.validation`; these models only check each field's own shape.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from engine.limits import (
    MAX_MAP_CONCURRENCY,
    MAX_NODE_PARAMS_BYTES,
    MAX_NODES,
    MAX_PARALLEL_BRANCHES,
    MAX_STATE_DEPTH,
    MAX_STEPS_CEILING,
    MAX_WAIT_SECONDS,
    NUMBER_HOOKS,
    json_depth,
)
from engine.triggers import MAX_TRIGGERS, check_expression

DEFAULT_MAX_STEPS = 100
END = "__end__"
"""An edge target that ends the run, for branches that finish (as LangGraph's ``END``)."""


class RetryPolicy(BaseModel):
    """How often a failing node is tried, and how long to wait between tries.

    The wait before try ``n + 1`` is ``interval_seconds * backoff_rate ** (n - 1)``,
    capped at ``max_delay_seconds``; with ``jitter`` set to ``"full"`` it is a random
    value between 0 and that (AWS's "full jitter").
    """

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(default=1, ge=1, le=100)
    interval_seconds: float = Field(default=1.0, ge=0, le=86_400)
    backoff_rate: float = Field(default=2.0, ge=1.0, le=100)
    max_delay_seconds: float | None = Field(default=None, ge=0, le=86_400)
    jitter: Literal["none", "full"] = "none"

    @field_validator("jitter", mode="before")
    @classmethod
    def _jitter_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "full" if value else "none"
        return value

    def delay(self, failed_attempt: int, random_fraction: float = 1.0) -> float:
        """Seconds to wait after ``failed_attempt`` (1-based) before the next try."""
        delay = self.interval_seconds * self.backoff_rate ** (failed_attempt - 1)
        if self.max_delay_seconds is not None:
            delay = min(delay, self.max_delay_seconds)
        if self.jitter == "full":
            delay *= random_fraction
        return delay


class WaitSpec(BaseModel):
    """How long a wait node waits: ``seconds``, ``until`` a time, or until the time at state key ``until_key``.

    Times are ISO 8601 with a time zone (``2027-01-01T00:00:00Z``); a state value
    may also be epoch seconds. At most :data:`~engine.limits.MAX_WAIT_SECONDS`.
    """

    model_config = ConfigDict(extra="forbid")

    seconds: float | None = Field(default=None, ge=0, le=MAX_WAIT_SECONDS)
    until: AwareDatetime | None = None
    until_key: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> WaitSpec:
        given = [name for name in ("seconds", "until", "until_key") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a wait needs exactly one of 'seconds', 'until' and 'until_key'")
        return self


class CallbackSpec(BaseModel):
    """A callback node pauses the run until its token is used, or ``timeout_seconds`` pass (then ``catch``)."""

    model_config = ConfigDict(extra="forbid")

    timeout_seconds: float = Field(default=86_400, gt=0, le=MAX_WAIT_SECONDS)
    catch: str | None = None


class Node(BaseModel):
    """A node calls one tool, waits (``wait``) or waits for a callback (``callback``).

    ``catch`` names the node taken once retries are exhausted.

    ``params`` (``metadata`` is accepted for it, as in the earlier versions'
    format) is JSON data the tool receives as ``ctx.params``, at most
    :data:`~engine.limits.MAX_NODE_PARAMS_BYTES` of it.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=False)

    tool: str | None = Field(default=None, min_length=1)
    description: str | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout_seconds: float | None = Field(default=None, gt=0, le=900)
    catch: str | None = None
    params: Any = None
    wait: WaitSpec | None = None
    callback: CallbackSpec | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Node:
        kinds = [name for name in ("tool", "wait", "callback") if getattr(self, name) is not None]
        if len(kinds) != 1:
            raise ValueError("a node needs exactly one of 'tool', 'wait' and 'callback'")
        return self

    @property
    def label(self) -> str:
        """What the node does, in a word: its tool's name, ``wait`` or ``callback``."""
        return self.tool or ("wait" if self.wait is not None else "callback")

    @model_validator(mode="before")
    @classmethod
    def _from_tool_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"tool": value}
        if isinstance(value, dict) and "metadata" in value:
            if "params" in value:
                raise ValueError("give the node's parameters as 'params' or as 'metadata', not both")
            value = {("params" if k == "metadata" else k): v for k, v in value.items()}
        return value

    @field_validator("params")
    @classmethod
    def _json_params(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            text = json.dumps(value, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"params must be JSON data: {exc}") from None
        if len(text.encode()) > MAX_NODE_PARAMS_BYTES:
            raise ValueError(
                f"params take {len(text.encode())} bytes as JSON; the limit is {MAX_NODE_PARAMS_BYTES}"
            )
        if json_depth(value) > MAX_STATE_DEPTH:
            raise ValueError(f"params are nested deeper than {MAX_STATE_DEPTH} levels")
        return value


class EdgeRule(BaseModel):
    """One branch of a conditional edge: taken when ``when`` holds, or always if absent."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    to: str = Field(min_length=1)
    when: dict[str, Any] | None = Field(default=None, validation_alias="condition")

    @model_validator(mode="before")
    @classmethod
    def _accept_when_or_condition(cls, value: Any) -> Any:
        if isinstance(value, dict) and "when" in value:
            if "condition" in value:
                raise ValueError("give the rule's condition as 'when' or as 'condition', not both")
            value = dict(value)
            value["condition"] = value.pop("when")
        return value


ReducerName = Literal["append", "extend", "merge", "sum", "max", "min", "last"]
"""How the writes of several branches to one state key combine at the join (:mod:`engine.reducers`)."""


class ParallelEdge(BaseModel):
    """``{"parallel": ["a", "b"], "join": "merge"}``: run each branch from its start node, then ``join``.

    Each branch is the set of nodes reachable from its start without passing the
    join (:meth:`Graph.region_of`); :mod:`engine.validation` checks that every
    branch leads to the join, that branches do not share nodes and that the
    names are unique.
    """

    model_config = ConfigDict(extra="forbid")

    parallel: list[str] = Field(min_length=1, max_length=MAX_PARALLEL_BRANCHES)
    join: str


class MapSpec(BaseModel):
    """One branch per element of the list at state key ``items``, from ``start`` to ``join``.

    An item's branch sees its element at state key ``as`` and its index at
    :attr:`index_key`. ``collect`` maps a key the branches write to a state key
    that gets one entry per item, in item order (``None`` where an item did not
    write it).
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    items: str
    as_: str = Field(default="item", alias="as")
    index_as: str | None = None
    start: str
    join: str
    max_concurrency: int = Field(default=10, ge=1, le=MAX_MAP_CONCURRENCY)
    collect: dict[str, str] = Field(default_factory=dict)

    @property
    def index_key(self) -> str:
        """The state key of the item's index: ``index_as``, else ``"<as>_index"``."""
        return self.index_as if self.index_as is not None else f"{self.as_}_index"


class MapEdge(BaseModel):
    """``{"map": {...}}``: see :class:`MapSpec`."""

    model_config = ConfigDict(extra="forbid")

    map: MapSpec


FanOutEdge = ParallelEdge | MapEdge


def _edge_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list[EdgeRule]"
    if isinstance(value, ParallelEdge) or (isinstance(value, dict) and "parallel" in value):
        return "parallel"
    if isinstance(value, MapEdge) or (isinstance(value, dict) and "map" in value):
        return "map"
    return None


Edge = Annotated[
    Annotated[str, Tag("str")]
    | Annotated[list[EdgeRule], Tag("list[EdgeRule]")]
    | Annotated[ParallelEdge, Tag("parallel")]
    | Annotated[MapEdge, Tag("map")],
    Discriminator(_edge_kind),
]
"""A node name, a list of rules, a :class:`ParallelEdge` or a :class:`MapEdge`.

The form is chosen by the input's shape (a dict by its ``parallel`` or ``map``
key), so a wrong edge is reported against the form it was meant to be.
"""


class TriggerSpec(BaseModel):
    """A schedule that starts a run of the graph's latest version with ``initial_state`` (:mod:`engine.triggers`)."""

    model_config = ConfigDict(extra="forbid")

    schedule: str = Field(min_length=1, max_length=256)
    initial_state: dict[str, Any] = Field(default_factory=dict)

    @field_validator("schedule")
    @classmethod
    def _expression(cls, value: str) -> str:
        check_expression(value)
        return value

    @field_validator("initial_state")
    @classmethod
    def _json(cls, value: dict[str, Any]) -> dict[str, Any]:
        if json_depth(value) > MAX_STATE_DEPTH:
            raise ValueError(f"initial_state nests deeper than {MAX_STATE_DEPTH} levels")
        json.dumps(value, allow_nan=False)
        return value


class Graph(BaseModel):
    """A workflow: named nodes, the edges between them, where to start and how far to go."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="graph", min_length=1, max_length=200)
    description: str | None = None
    start_node: str = Field(min_length=1)
    nodes: dict[str, Node] = Field(min_length=1, max_length=MAX_NODES)
    edges: dict[str, Edge] = Field(default_factory=dict)
    max_steps: int = Field(default=DEFAULT_MAX_STEPS, ge=1, le=MAX_STEPS_CEILING)
    timeout_seconds: float | None = Field(default=None, gt=0)
    reducers: dict[str, ReducerName] = Field(default_factory=dict)
    triggers: list[TriggerSpec] = Field(default_factory=list, max_length=MAX_TRIGGERS)

    @field_validator("nodes", mode="before")
    @classmethod
    def _nodes_from_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            out: dict[str, Any] = {}
            for item in value:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    raise ValueError(
                        "each node in a list needs a 'name', as in "
                        '[{"name": "a", "tool": "dq.profile"}]; or give nodes as {"a": "dq.profile"}'
                    )
                body = {k: v for k, v in item.items() if k != "name"}
                out[item["name"]] = body
            return out
        return value

    @field_validator("edges", mode="before")
    @classmethod
    def _edges_from_list(cls, value: Any) -> Any:
        """Accept ``[{"from": a, "to": b}, ...]`` as well as the mapping form."""
        if isinstance(value, list):
            out: dict[str, Any] = {}
            for item in value:
                if not isinstance(item, dict) or "from" not in item or "to" not in item:
                    raise ValueError(
                        "each edge in a list needs 'from' and 'to', as in "
                        '[{"from": "a", "to": "b"}]; or give edges as {"a": "b"}'
                    )
                rule = {k: v for k, v in item.items() if k != "from"}
                out.setdefault(item["from"], []).append(rule)
            return out
        return value

    def ends_at(self, node: str) -> bool:
        """Whether some edge of ``node`` can end the run: no edges, or a rule to :data:`END`.

        A fan-out node never does: its run goes on at its join.
        """
        edge = self.edges.get(node)
        if edge is None or edge == END:
            return True
        return isinstance(edge, list) and any(rule.to == END for rule in edge)

    def successors(self, node: str) -> list[str]:
        """Every node an edge (or the node's catch) can lead to from ``node``, :data:`END` excluded.

        For a fan-out node: its branch starts, and for a map also its join (where a
        map over an empty list goes).
        """
        out: list[str] = []
        edge = self.edges.get(node)
        if isinstance(edge, str):
            out.append(edge)
        elif isinstance(edge, list):
            out.extend(rule.to for rule in edge)
        elif isinstance(edge, ParallelEdge):
            out.extend(edge.parallel)
        elif isinstance(edge, MapEdge):
            out.extend([edge.map.start, edge.map.join])
        found = self.nodes.get(node)
        if found is not None and found.catch:
            out.append(found.catch)
        if found is not None and found.callback is not None and found.callback.catch:
            out.append(found.callback.catch)
        return [n for n in dict.fromkeys(out) if n != END]

    def fan_out(self, node: str) -> ParallelEdge | MapEdge | None:
        """The parallel or map edge of ``node``, or ``None`` if its edge is not a fan-out."""
        edge = self.edges.get(node)
        return edge if isinstance(edge, ParallelEdge | MapEdge) else None

    def fan_out_nodes(self) -> list[str]:
        """The nodes whose edge is a fan-out, in the order of ``edges``."""
        return [name for name, edge in self.edges.items() if isinstance(edge, ParallelEdge | MapEdge)]

    def branch_starts(self, node: str) -> list[str]:
        """The start nodes of ``node``'s branches: a parallel's list, a map's ``[start]``; else ``[]``."""
        edge = self.fan_out(node)
        if isinstance(edge, ParallelEdge):
            return list(edge.parallel)
        if isinstance(edge, MapEdge):
            return [edge.map.start]
        return []

    def join_of(self, node: str) -> str | None:
        """The join node of fan-out node ``node``, or ``None`` if ``node`` does not fan out."""
        edge = self.fan_out(node)
        if isinstance(edge, ParallelEdge):
            return edge.join
        if isinstance(edge, MapEdge):
            return edge.map.join
        return None

    def region_of(self, fan_out_node: str) -> dict[str, frozenset[str]]:
        """Branch start -> the known nodes reachable from it (edges, rules, catch) without passing the join.

        The join is never part of a region. Empty for a node that does not fan out.
        """
        join = self.join_of(fan_out_node)
        if join is None:
            return {}
        regions: dict[str, frozenset[str]] = {}
        for start in self.branch_starts(fan_out_node):
            if start in regions:
                continue
            seen: set[str] = set()
            queue = deque([start])
            while queue:
                name = queue.popleft()
                if name == join or name in seen or name not in self.nodes:
                    continue
                seen.add(name)
                queue.extend(self.successors(name))
            regions[start] = frozenset(seen)
        return regions

    def branch_region(self, node: str) -> tuple[str, str] | None:
        """``(fan-out node, branch start)`` of the first branch (in ``edges`` order) holding ``node``, or ``None``.

        A valid graph puts a node in at most one branch.
        """
        for fan_out_node in self.fan_out_nodes():
            for start, region in self.region_of(fan_out_node).items():
                if node in region:
                    return fan_out_node, start
        return None


def duplicate_node_names(raw: Any) -> list[str]:
    """Names given to more than one node in a raw (parsed JSON) definition's ``nodes`` list."""
    if not isinstance(raw, dict) or not isinstance(raw.get("nodes"), list):
        return []
    names = Counter(n.get("name") for n in raw["nodes"] if isinstance(n, dict))
    return sorted(str(name) for name, count in names.items() if count > 1)


class _RepeatedKeys(dict[str, Any]):
    """A JSON object that named some key more than once; ``pairs`` keeps every entry."""

    pairs: list[tuple[str, Any]]


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({k for k, _ in pairs}) == len(pairs):
        return dict(pairs)
    obj = _RepeatedKeys(pairs)
    obj.pairs = pairs
    return obj


def repeated_edge_sources(raw: Any) -> list[str]:
    """Sources named more than once in the ``edges`` object of a definition read by :func:`loads_definition`.

    JSON keeps only the last of them, so all but one of their edges would be
    lost without a word.
    """
    edges = raw.get("edges") if isinstance(raw, dict) else None
    if not isinstance(edges, _RepeatedKeys):
        return []
    names = Counter(k for k, _ in edges.pairs)
    return sorted(name for name, count in names.items() if count > 1)


def loads_definition(text: str | bytes) -> Any:
    """Parse a graph definition from JSON text without losing nodes whose names repeat.

    ``json.loads`` silently keeps the last of repeated keys. A ``nodes`` object
    that names a node twice is turned into the list form, where
    :func:`duplicate_node_names` sees the repetition and validation reports it.
    """
    data = json.loads(text, object_pairs_hook=_pairs_hook, **NUMBER_HOOKS)
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if isinstance(nodes, _RepeatedKeys):
        data["nodes"] = [{**(v if isinstance(v, dict) else {"tool": v}), "name": k} for k, v in nodes.pairs]
    return data
