"""Events built from ``events/*.json`` and invocations through ``sam local start-lambda``."""

from __future__ import annotations

import base64
import copy
import gzip
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


def text(response: dict[str, Any]) -> str:
    """The body of an API Gateway proxy response, decoded (base64, gzip) when it is encoded."""
    raw = response["body"]
    if not response.get("isBase64Encoded"):
        return str(raw)
    data = base64.b64decode(raw)
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    if headers.get("content-encoding") == "gzip":
        data = gzip.decompress(data)
    return data.decode()


def body(response: dict[str, Any]) -> Any:
    """The JSON body of an API Gateway proxy response."""
    return json.loads(text(response))
