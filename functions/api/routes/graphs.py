"""``/graphs``: register graph definitions, add versions, read them, draw them and delete them.

The request body of ``POST /graphs`` and ``PUT /graphs/{graph_id}`` is the graph
definition itself (see the ``Graph`` schema). It is read from the raw body with
:func:`engine.graph.loads_definition`, not through Powertools' body validation,
so a node name given twice is reported rather than silently merged, and every
problem of the graph comes back at once as a 400 ``invalid_graph``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from engine.errors import InvalidGraphError
from engine.mermaid import to_mermaid
from functions.api.body import graph_definition
from functions.api.caller import owner
from functions.api.schemas import (
    GRAPH_ID_PATTERN,
    Diagram,
    GraphDetail,
    GraphList,
    GraphProblem,
    GraphSummary,
    GraphValidation,
    errors,
    ok,
)
from functions.shared import wiring

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]

GRAPH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A graph definition. `nodes` may also be a list of `{name, tool, ...}` objects.",
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/Graph"},
                "example": {
                    "name": "customer-profile",
                    "start_node": "initialize",
                    "nodes": {
                        "initialize": {"tool": "dq.initialize"},
                        "profile": {"tool": "dq.profile", "retry": {"max_attempts": 3}},
                        "detect": {"tool": "dq.detect"},
                    },
                    "edges": {"initialize": "profile", "profile": "detect"},
                },
            }
        },
    }
}

GraphId = Annotated[str, Path(min_length=1, max_length=128)]


def _created(record_summary: GraphSummary) -> Response[GraphSummary]:
    return Response(
        status_code=HTTPStatus.CREATED,
        content_type=content_types.APPLICATION_JSON,
        body=record_summary,
        headers={"Location": f"/graphs/{record_summary.graph_id}?version={record_summary.version}"},
    )


@router.post(
    "/graphs",
    summary="Register a graph",
    description="Validates the definition and stores it as version 1. Nothing is stored if it is invalid.",
    tags=["graphs"],
    responses={**ok(201, "Created: the new graph's id and version"), **errors(400, 409, 413, 415)},
    openapi_extensions=GRAPH_BODY,
)
def create_graph(
    graph_id: Annotated[
        str | None,
        Query(pattern=GRAPH_ID_PATTERN, description="Choose the id (409 if taken); a random one by default."),
    ] = None,
) -> Response[GraphSummary]:
    raw = graph_definition(router.current_event)
    record = wiring.service().create_graph(raw, graph_id=graph_id, owner=owner(router))
    return _created(GraphSummary.of(record))


@router.post(
    "/graphs/validate",
    summary="Validate a graph without storing it",
    description="200 with `valid`, every problem found (each with the path it names, e.g. `nodes.x`, "
    "`edges.y`) and, for a valid graph, its Mermaid flowchart. A body that is not JSON is a 400.",
    tags=["graphs"],
    responses={**ok(200, "The validation result", GraphValidation), **errors(400, 413, 415)},
    openapi_extensions=GRAPH_BODY,
)
def validate_graph() -> GraphValidation:
    owner(router)  # authenticated like the other graph routes
    raw = graph_definition(router.current_event)
    try:
        graph = wiring.service().validate(raw)
    except InvalidGraphError as exc:
        problems = [GraphProblem(where=p.where, message=p.message) for p in exc.problems]
        return GraphValidation(valid=False, problems=problems, mermaid=None)
    return GraphValidation(valid=True, problems=[], mermaid=to_mermaid(graph))


@router.put(
    "/graphs/<graph_id>",
    summary="Add a version to a graph",
    description="Stores the definition as the graph's next version. Runs already started keep theirs.",
    tags=["graphs"],
    responses={**ok(201, "Created: the graph's new version"), **errors(400, 404, 409, 413, 415)},
    openapi_extensions=GRAPH_BODY,
)
def add_graph_version(graph_id: GraphId) -> Response[GraphSummary]:
    raw = graph_definition(router.current_event)
    record = wiring.service().add_graph_version(graph_id, raw, owner=owner(router))
    return _created(GraphSummary.of(record))


@router.get(
    "/graphs",
    summary="List graphs",
    description="The latest version of each graph, newest first.",
    tags=["graphs"],
    responses={**ok(200, "The graphs"), **errors()},
)
def list_graphs(limit: Annotated[int, Query(ge=1, le=100)] = 100) -> GraphList:
    return GraphList(
        graphs=[GraphSummary.of(r) for r in wiring.service().list_graphs(limit, owner=owner(router))]
    )


@router.get(
    "/graphs/<graph_id>",
    summary="Get a graph",
    tags=["graphs"],
    responses={**ok(200, "The graph version and its definition"), **errors(404)},
)
def get_graph(
    graph_id: GraphId,
    version: Annotated[int | None, Query(ge=1, description="A version; the latest by default.")] = None,
) -> GraphDetail:
    return GraphDetail.of(wiring.service().get_graph(graph_id, version, owner=owner(router)))


@router.get(
    "/graphs/<graph_id>/diagram",
    summary="Draw a graph as a Mermaid flowchart",
    description="`text/plain` Mermaid source, or `{graph_id, version, mermaid}` with `Accept: application/json`.",
    tags=["graphs"],
    responses={
        200: {
            "description": "The Mermaid flowchart",
            "content": {"text/plain": {"schema": {"type": "string"}}, "application/json": {"model": Diagram}},
        },
        **errors(404),
    },
)
def graph_diagram(
    graph_id: GraphId,
    version: Annotated[int | None, Query(ge=1, description="A version; the latest by default.")] = None,
) -> Response[Any]:
    record = wiring.service().get_graph(graph_id, version, owner=owner(router))
    mermaid = to_mermaid(record.definition)
    accept = router.current_event.headers.get("accept") or ""
    if content_types.APPLICATION_JSON in accept:
        body = Diagram(graph_id=record.graph_id, version=record.version, mermaid=mermaid)
        return Response(HTTPStatus.OK, content_types.APPLICATION_JSON, body.model_dump())
    return Response(HTTPStatus.OK, "text/plain; charset=utf-8", mermaid)


@router.delete(
    "/graphs/<graph_id>",
    summary="Delete a graph",
    description="Deletes every version of the graph. Runs that ended stay readable; a run still going "
    "fails at its next step with `GraphDeleted`.",
    tags=["graphs"],
    responses={204: {"description": "Deleted", "content": {}}, **errors(404)},
)
def delete_graph(graph_id: GraphId) -> Response[None]:
    wiring.service().delete_graph(graph_id, owner=owner(router))
    return Response(status_code=HTTPStatus.NO_CONTENT, body=None)
