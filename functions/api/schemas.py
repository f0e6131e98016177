"""Request and response bodies of the HTTP API, as pydantic models (they are also the OpenAPI schemas)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field

from engine.graph import Graph
from engine.model import GraphRecord, LogRecord, Run, RunError, RunStatus, fanout_summary
from engine.service import MAX_CALLBACK_DATA_BYTES


class Schema(BaseModel):
    """The base of these models: each builds its validator and serializer when first used, not at import.

    A request builds the models its route uses (and ``GET /openapi.json`` all of
    them), so a cold start does not build the other twenty.
    """

    model_config = ConfigDict(defer_build=True)


GRAPH_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class ErrorBody(Schema):
    """Every error answer: a stable ``code`` to branch on and a ``message`` for people."""

    code: str = Field(examples=["graph_not_found"])
    message: str
    details: dict[str, Any] | None = None


class GraphSummary(Schema):
    graph_id: str
    version: int
    name: str
    description: str | None = None
    created_at: float

    @classmethod
    def of(cls, record: GraphRecord) -> GraphSummary:
        return cls.model_validate(record.summary())


class GraphDetail(GraphSummary):
    definition: Graph

    @classmethod
    def of(cls, record: GraphRecord) -> GraphDetail:
        return cls(**record.summary(), definition=record.definition)


class GraphList(Schema):
    graphs: list[GraphSummary]


class RunList(Schema):
    runs: list[dict[str, Any]] = Field(
        description="Each run without its state: status, graph, position, error and timestamps (as GET /runs/{id} with include_state=false)."
    )


class Diagram(Schema):
    graph_id: str
    version: int
    mermaid: str


class GraphProblem(Schema):
    where: str = Field(description="The path the problem names: `nodes.x`, `edges.y`, `start_node`...")
    message: str


class GraphValidation(Schema):
    valid: bool
    problems: list[GraphProblem]
    mermaid: str | None = Field(description="The graph as a Mermaid flowchart; `null` when it is invalid.")


class RunRequest(Schema):
    """Start a run of a graph (its latest version unless ``version`` is given)."""

    model_config = ConfigDict(extra="forbid")

    graph_id: str = Field(min_length=1, max_length=128)
    initial_state: dict[str, Any] = Field(default_factory=dict)
    wait: bool = Field(
        default=False,
        description="Run the steps in this request for up to the wait budget: 200 with the finished run, "
        "or 202 if it was handed to the queue. Cannot be combined with `version`.",
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="A repeated key returns the run first started with it instead of starting another.",
    )
    version: int | None = Field(default=None, ge=1)


class RunAccepted(Schema):
    """A run that was started (or found by its idempotency key) and is going on in the background."""

    run_id: str
    status: RunStatus
    graph_id: str
    graph_version: int


class WaitingView(Schema):
    """What a run at a wait or callback node waits for, since and until when (epoch seconds).

    A callback's token is not here: it is in the run's log (the ``callback_waiting`` record).
    """

    kind: str = Field(description="`timer` (a wait node) or `callback`.", examples=["callback"])
    node: str
    since: float
    until: float = Field(description="When the wait ends, or the callback times out.")


class RunView(Schema):
    """A run as the API shows it: status, position, state, error and timestamps (epoch seconds)."""

    run_id: str
    graph_id: str
    graph_version: int
    status: RunStatus
    current_node: str | None = None
    step: int
    attempt: int
    state: dict[str, Any] | None = Field(default=None, description="Left out with `include_state=false`.")
    error: RunError | None = None
    created_at: float
    updated_at: float
    finished_at: float | None = None
    idempotency_key: str | None = None
    fanout: dict[str, Any] | None = Field(
        default=None,
        description="While the run is between a fan-out node and its join: the branches' progress "
        "(size, started, arrived, and where each running branch is).",
    )
    waiting: WaitingView | None = Field(
        default=None, description="While the run is at a wait or callback node: what it waits for."
    )
    redriven_at: float | None = Field(default=None, description="When the run was last redriven.")

    @classmethod
    def of(cls, run: Run, *, include_state: bool = True) -> RunView:
        fields = run.model_dump(
            exclude={"subscribers", "state", "next_seq", "not_before", "fanout", "waiting", "callbacks"}
        )
        fanout = fanout_summary(run.fanout) if run.fanout is not None else None
        waiting = run.waiting
        return cls(
            **fields,
            state=dict(run.state.items()) if include_state else None,
            fanout=fanout,
            waiting=WaitingView(
                kind=waiting.kind, node=waiting.node, since=waiting.since, until=waiting.until
            )
            if waiting is not None
            else None,
        )


class CancelRequest(Schema):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="cancelled by request", min_length=1, max_length=500)


class CallbackApproval(Schema):
    """Approve the callback a run waits for: ``data`` is merged into the run's state, ``decision`` (if any)
    is written at state key ``decision``."""

    model_config = ConfigDict(extra="forbid")

    decision: Any = Field(default=None, description="Any JSON value, kept at state key `decision`.")
    data: dict[str, Any] | None = Field(
        default=None,
        description="Merged into the run's state (as the node's update). With `decision`, at most "
        f"{MAX_CALLBACK_DATA_BYTES} bytes as JSON (else 413).",
    )


class CallbackRejection(Schema):
    """Reject the callback a run waits for: the node fails with ``CallbackRejected`` and this reason."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class LogsPage(Schema):
    """Log records with ``seq > after``, in order; ask again with ``after=next_after`` for the next page."""

    run_id: str
    records: list[LogRecord]
    next_after: int


class ToolInfo(Schema):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    description: str
    is_async: bool = Field(alias="async")


class ToolList(Schema):
    tools: list[ToolInfo]


class LegacyCreated(Schema):
    graph_id: str
    version: int


class LegacyRunRequest(Schema):
    graph_id: str = Field(min_length=1, max_length=128)
    initial_state: dict[str, Any] = Field(default_factory=dict)


class LegacyRunResult(Schema):
    """What ``POST /graph/run`` answered in the FastAPI versions: the run with its final state and log."""

    run_id: str
    status: RunStatus
    final_state: dict[str, Any]
    error: RunError | None = None
    logs: list[LogRecord]


class LegacyRunStarted(Schema):
    run_id: str
    status: RunStatus


class LegacyExecution(Schema):
    """A run's status, current state and its log so far."""

    run_id: str
    graph_id: str
    status: RunStatus
    current_node: str | None = None
    step: int
    state: dict[str, Any]
    error: RunError | None = None
    logs: list[LogRecord]


class DemoRequest(Schema):
    """Settings of the data-quality demo (``dq.initialize`` fills in a default for each one left out)."""

    model_config = ConfigDict(extra="forbid")

    records: int | None = Field(default=None, ge=1, le=100_000, description="How many customer rows to make.")
    seed: int | None = Field(
        default=None, ge=-(2**63), lt=2**63, description="Seed of the generated dataset."
    )
    target_score: float | None = Field(default=None, ge=0, le=1, description="The quality score to reach.")
    max_iterations: int | None = Field(default=None, ge=1, le=10, description="Repair loops at most.")


class DemoStarted(Schema):
    run_id: str
    graph_id: str
    status: RunStatus


_ERROR_DESCRIPTIONS = {
    400: "Malformed or too deeply nested JSON, an invalid graph (`details.problems` lists every problem), "
    "an unusable value, or a path that is not UTF-8",
    404: "Unknown graph or run, or no run waits for this callback token",
    405: "The route has no such method (`Allow` lists those it has)",
    409: "Conflict: the run already ended (or has not, to delete it, or cannot be redriven), the id is "
    "taken, or the callback token was used already",
    410: "The callback timed out before it was used",
    413: "Request body, state or answer too large (see docs/limits.md)",
    415: "The body is not sent as `application/json`",
    422: "Request failed validation (`details.errors`)",
}


def ok(status: int, description: str, model: type[BaseModel] | None = None) -> dict[int, OpenAPIResponse]:
    """An OpenAPI success response; without ``model`` its schema is the route's return annotation."""
    response: OpenAPIResponse = {"description": description}
    if model is not None:
        response["content"] = {"application/json": {"model": model}}
    return {status: response}


def errors(*statuses: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI error responses of a route; 400 (a path that is not UTF-8), 422 and 500 are always listed."""
    content: dict[str, Any] = {"application/json": {"model": ErrorBody}}
    out: dict[int, OpenAPIResponse] = {
        status: {"description": _ERROR_DESCRIPTIONS[status], "content": content}
        for status in sorted({*statuses, 400, 422})
    }
    out[500] = {"description": "Unexpected error (`internal_error`)", "content": content}
    return out
