"""Events built from ``events/*.json`` and invocations through ``sam local start-lambda``."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.support.events import load_event


def api_event(name: str, *, path: str | None = None, body: Any = None) -> dict[str, Any]:
    """``events/<name>.json`` (an HTTP API event), with its path and JSON body replaced when given.

    Everything else (headers, ``requestContext`` and whatever identity it carries) is the file's.
    """
    event = load_event(name)
    if path is not None:
        event["rawPath"] = path
        event["requestContext"]["http"]["path"] = path
        event["pathParameters"] = {"proxy": path.lstrip("/")}
    if body is not None:
        event["body"] = json.dumps(body)
        event["headers"]["content-length"] = str(len(event["body"]))
    return event


def sqs_event(messages: list[dict[str, Any]], template: str = "step_sqs.json") -> dict[str, Any]:
    """An SQS event of ``messages`` (as ``ReceiveMessage`` returns them) shaped like ``events/<template>``."""
    event = load_event(template)
    shape = event["Records"][0]
    records = []
    for message in messages:
        record = copy.deepcopy(shape)
        record["messageId"] = message["MessageId"]
        record["receiptHandle"] = message["ReceiptHandle"]
        record["body"] = message["Body"]
        record["md5OfBody"] = message["MD5OfBody"]
        record["attributes"] = {**shape["attributes"], **message.get("Attributes", {})}
        records.append(record)
    event["Records"] = records
    return event


def invoke(client: Any, function: str, event: dict[str, Any]) -> Any:
    """Invoke ``function`` with ``event``; its decoded JSON answer (a function error fails the test)."""
    reply = client.invoke(FunctionName=function, Payload=json.dumps(event).encode())
    payload = reply["Payload"].read()
    assert "FunctionError" not in reply, payload
    return json.loads(payload)


def body(response: dict[str, Any]) -> Any:
    """The JSON body of an API Gateway proxy response."""
    return json.loads(response["body"])
