"""The HTTP API Lambda invoked with the sample events of ``events/``, their path, query or body replaced."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from engine.model import StepMessage
from functions.api import app as api_app
from local.lambda_context import LocalContext
from tests.support.events import load_event
from tests.support.moto_env import AwsEnv

UNSET: Any = object()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str
    base64: bool

    def json(self) -> Any:
        return json.loads(self.text)


class Api:
    """Invokes the handler with a sample event, its path, query, headers or body replaced."""

    def __init__(self, env: AwsEnv) -> None:
        self.env = env

    def __call__(
        self,
        event_name: str,
        *,
        path: str | None = None,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Any = UNSET,
        method: str | None = None,
        caller: str | None = UNSET,
    ) -> Reply:
        """``caller`` replaces the event's IAM caller (``userArn``); ``None`` removes the authorizer context."""
        event = load_event(event_name)
        if caller is None:
            event["requestContext"].pop("authorizer", None)
        elif caller is not UNSET:
            event["requestContext"]["authorizer"]["iam"]["userArn"] = caller
        if path is not None:
            event["rawPath"] = path
            event["requestContext"]["http"]["path"] = path
            event["pathParameters"] = {"proxy": path.lstrip("/")}
        if method is not None:
            event["requestContext"]["http"]["method"] = method
        if query is not None:
            event["queryStringParameters"] = query
            event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
        if headers:
            event["headers"].update(headers)
        if body is not UNSET:
            if body is None:
                event.pop("body", None)
            else:
                event["body"] = body if isinstance(body, str) else json.dumps(body)
        response = api_app.lambda_handler(event, LocalContext())
        return Reply(
            status=response["statusCode"],
            headers=response.get("headers") or {},
            text=response.get("body") or "",
            base64=bool(response.get("isBase64Encoded")),
        )

    def create_graph(self, graph: dict[str, Any]) -> str:
        reply = self("api_create_graph", body=graph)
        assert reply.status == 201, reply.text
        return str(reply.json()["graph_id"])

    def graph_ids(self) -> list[str]:
        reply = self("api_list_graphs", query={})
        assert reply.status == 200
        return [g["graph_id"] for g in reply.json()["graphs"]]

    def drain_queue(self) -> list[StepMessage]:
        messages: list[StepMessage] = []
        while True:
            got = self.env.sqs.receive_message(
                QueueUrl=self.env.resources.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
            ).get("Messages", [])
            if not got:
                return messages
            for message in got:
                messages.append(StepMessage.model_validate_json(message["Body"]))
                self.env.sqs.delete_message(
                    QueueUrl=self.env.resources.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
