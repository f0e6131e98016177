"""Cost per step: AWS requests and billed units of the step protocol, priced at us-east-1 on-demand.

Runs a small-state three-node loop graph through the real step handler on moto
(in-process), counts every AWS request by operation, and sizes the DynamoDB
items each step reads and writes (DynamoDB bills a write by the larger of the
item's sizes before and after, in 1 KB units; a strongly consistent read in
4 KB units). Lambda duration is not measurable on moto: it is priced from
``--lambda-ms`` (an assumption, printed with the result).

Usage: ``.venv/bin/python bench/cost.py [--runs 20] [--loops 10] [--lambda-ms 40]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PRICES = {
    "dynamodb_write_unit": 0.625 / 1e6,
    "dynamodb_read_unit": 0.125 / 1e6,
    "sqs_fifo_request": 0.50 / 1e6,
    "lambda_request": 0.20 / 1e6,
    "lambda_arm_gb_second": 0.0000133334,
    "s3_put": 0.005 / 1e3,
    "s3_get": 0.0004 / 1e3,
}
STEP_FUNCTIONS_STANDARD_PER_MILLION = 25.0
TARGET_PER_MILLION = 4.0


BENCH_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "bench",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "WORKFLOW_TOOL_MODULES": "tests.support.tools",
    "WS_MANAGEMENT_ENDPOINT": "",
}
"""The environment the benches run the handlers in on moto: fake credentials, quiet Powertools, the test tools."""


def attribute_size(value: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute value, as its documentation counts it."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return math.ceil(len(inner.strip("-").replace(".", "").lstrip("0") or "0") / 2) + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(v.encode()) for v in inner)
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in inner.items())
    return 0


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--loops", type=int, default=10, help="times each run goes round a -> b -> c")
    parser.add_argument("--lambda-ms", type=float, default=40.0, help="assumed billed step duration")
    parser.add_argument("--memory-mb", type=int, default=512)
    args = parser.parse_args()

    os.environ.update(BENCH_ENV)
    import boto3
    from moto import mock_aws

    from functions.shared import wiring
    from functions.step import app as step_app
    from local.esm import EventSourceMapping
    from local.resources import create_resources
    from tests.support.tools import loop_graph

    with mock_aws():
        sqs = boto3.client("sqs")
        dynamodb = boto3.client("dynamodb")
        resources = create_resources(dynamodb, sqs, boto3.client("s3"))
        os.environ.update(
            TABLE_NAME=resources.table_name, BLOB_BUCKET=resources.bucket, STEP_QUEUE_URL=resources.queue_url
        )
        wiring.reset()
        service = wiring.service()
        graph_id = service.create_graph(loop_graph(args.loops, "bench-loop")).graph_id
        run_ids = [
            service.start_run(graph_id, {"i": 0, "label": f"run-{n}"}).run_id for n in range(args.runs)
        ]

        calls: Counter[str] = Counter()

        def count(event_name: str, **kwargs: Any) -> None:
            calls[event_name.split(".", 1)[1]] += 1

        for client in (wiring.client("dynamodb"), wiring.client("sqs"), wiring.client("s3"), sqs):
            client.meta.events.register("before-call.*.*", count)

        mapping = EventSourceMapping(sqs, resources.queue_url, resources.queue_arn, step_app.lambda_handler)
        started = time.perf_counter()
        invocations = 0
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            while True:
                outcome = mapping.poll_once()
                if outcome.received == 0:
                    break
                invocations += 1
        elapsed = time.perf_counter() - started

        steps = 0
        run_sizes, log_sizes = [], []
        for run_id in run_ids:
            run = service.get_run(run_id)
            assert run.status.value == "SUCCEEDED", run.status
            steps += run.step
            run_sizes.append(
                item_size(
                    dynamodb.get_item(
                        TableName=resources.table_name, Key={"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "RUN"}}
                    )["Item"]
                )
            )
            items = dynamodb.query(
                TableName=resources.table_name,
                KeyConditionExpression="pk = :p AND begins_with(sk, :l)",
                ExpressionAttributeValues={":p": {"S": f"RUN#{run_id}"}, ":l": {"S": "LOG#"}},
            )["Items"]
            log_sizes.extend(item_size(i) for i in items)

    run_kb = max(run_sizes) / 1024
    log_kb = max(log_sizes) / 1024
    per_step = {op: n / steps for op, n in sorted(calls.items())}
    handler_ops = (
        "dynamodb.GetItem",
        "dynamodb.PutItem",
        "dynamodb.UpdateItem",
        "sqs.SendMessage",
        "s3.PutObject",
    )
    handler_requests = sum(per_step.get(op, 0) for op in handler_ops)
    wru = math.ceil(run_kb) + math.ceil(log_kb)
    rru = math.ceil(run_kb / 4)
    sqs_requests = sum(v for op, v in per_step.items() if op.startswith("sqs."))
    lambda_invocations = invocations / steps
    cost = {
        "dynamodb": wru * PRICES["dynamodb_write_unit"] + rru * PRICES["dynamodb_read_unit"],
        "sqs": sqs_requests * PRICES["sqs_fifo_request"],
        "lambda_requests": lambda_invocations * PRICES["lambda_request"],
        "lambda_duration": args.lambda_ms / 1000 * args.memory_mb / 1024 * PRICES["lambda_arm_gb_second"],
    }
    # One run alone: every step is its own receive, delete and invocation.
    single = dict(cost)
    single["sqs"] = 3 * PRICES["sqs_fifo_request"]
    single["lambda_requests"] = PRICES["lambda_request"]
    total = sum(cost.values()) * 1e6
    total_single = sum(single.values()) * 1e6
    print(f"steps: {steps} in {args.runs} runs, {invocations} step invocations, {elapsed:.2f}s on moto")
    print("AWS requests per step:", ", ".join(f"{op} {n:.2f}" for op, n in per_step.items()))
    print(f"requests the step handler makes per step: {handler_requests:.2f} (target <= 4)")
    print(
        f"largest run item {run_kb:.2f} KB, largest log item {log_kb:.2f} KB: {wru} WRU + {rru} RRU per step"
    )
    print(
        f"$ per million steps, {args.runs} runs at once: {total:.2f}  "
        + ", ".join(f"{k} {v * 1e6:.2f}" for k, v in cost.items())
    )
    print(f"$ per million steps, one run alone (no batching): {total_single:.2f}")
    print(
        f"target <= ${TARGET_PER_MILLION:.2f}; Step Functions Standard ${STEP_FUNCTIONS_STANDARD_PER_MILLION:.2f} "
        f"(assumed Lambda duration {args.lambda_ms:g} ms at {args.memory_mb} MB arm64)"
    )
    print(
        json.dumps(
            {
                "requests_per_step": per_step,
                "handler_requests_per_step": handler_requests,
                "run_item_kb": run_kb,
                "log_item_kb": log_kb,
                "usd_per_million_steps": total,
                "usd_per_million_steps_single_run": total_single,
            }
        )
    )


if __name__ == "__main__":
    main()
