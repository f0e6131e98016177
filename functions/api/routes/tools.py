"""``/tools``: the tools graph nodes can call, with their descriptions."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from functions.api.schemas import ToolInfo, ToolList, errors, ok
from functions.shared import wiring

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]


@router.get(
    "/tools",
    summary="List the registered tools",
    tags=["tools"],
    responses={**ok(200, "The tools, by name"), **errors()},
)
def list_tools() -> ToolList:
    return ToolList(tools=[ToolInfo.model_validate(t) for t in wiring.service().registry.describe()])
