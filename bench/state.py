"""Cost and CPU per step as the state grows: the real step handler on moto, in-process.

Cases: a run whose state totals about 1 KB, 100 KB, 1 MB and 10 MB (ten keys: a
counter ``i`` that one node increments at every step, and nine values of equal
size that no step reads), and the 1000-record data-quality run
(``engine/graphs/data_quality.json``). Each step is one call of
``functions.step.app.lambda_handler`` with an event made from
``events/step_sqs.json``.

Measured per step, after a first step that fills the process's caches (a warm
function): the handler's CPU time (``time.process_time``), every AWS request by
operation, and the DynamoDB units they are billed: a write by the larger of the
item's sizes before and after (1 KB units; a transaction twice), a read by the
whole item's size whatever the projection (4 KB units, half for an eventually
consistent read; a Query on the sum of the items). Priced at us-east-1:
DynamoDB on-demand $0.625/M WRU and $0.125/M RRU, S3 $5/M PUT and $0.4/M GET,
SQS FIFO $0.50/M requests per 64 KB (the handler's measured sends, none after a
run's last step, plus the event source mapping's receive and delete of the step's
message: a run alone gets one message per receive; step messages are far under 64 KB),
Lambda $0.20/M requests and $0.0000133334 per GB-s at 512 MB arm64 with the
measured CPU time as the duration.

``--code DIR`` measures another checkout of the code (for example the merge base,
extracted with ``git archive``), so old and new figures come from the same machine.

Usage: ``.venv/bin/python bench/state.py [--steps 12] [--code DIR] [--json]``
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

from cost import BENCH_ENV, attribute_size  # bench/ is sys.path[0] when this runs as a script

ROOT = Path(__file__).resolve().parent.parent

KB = 1024
SIZES = {"1KB": KB, "100KB": 100 * KB, "1MB": KB * KB, "10MB": 10 * KB * KB}
PRICE = {
    "wru": 0.625 / 1e6,
    "rru": 0.125 / 1e6,
    "s3_put": 5 / 1e6,
    "s3_get": 0.4 / 1e6,
    "sqs": 0.50 / 1e6,
    "lambda_request": 0.20 / 1e6,
    "gb_second": 0.0000133334,
}
MEMORY_GB = 0.5
RECEIVE_AND_DELETE = 2.0
"""SQS requests per step the event source mapping makes (not seen on moto): a receive and a delete."""
TARGET_PER_MILLION = 4.0
DATA_QUALITY_TARGET = 5.0


def item_size(item: dict[str, Any] | None) -> int:
    """DynamoDB's size of an item (0 for none)."""
    return sum(len(k.encode()) + attribute_size(v) for k, v in (item or {}).items())


class Meter:
    """Counts requests and billed units of the clients it watches, while ``on``."""

    def __init__(self, raw: Any, table: str) -> None:
        self.raw = raw  # an unwatched client on the same moto backend, to size items
        self.table = table
        self.on = False
        self.ops: Counter[str] = Counter()
        self.wru = 0.0
        self.rru = 0.0
        self.wru_by: Counter[str] = Counter()
        self.sqs_chunks = 0
        """SQS sends billed: one request per 64 KB of each message body."""
        self._before: dict[str, Any] = {}

    def watch(self, client: Any) -> None:
        client.meta.events.register("provide-client-params.*.*", self._params)
        client.meta.events.register("after-call.*.*", self._after)

    def _size_of(self, key: dict[str, Any]) -> int:
        return item_size(self.raw.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item"))

    def _params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if not self.on:
            return
        self._before = {"params": dict(params)}
        if model.name in ("UpdateItem", "DeleteItem"):
            self._before["size"] = self._size_of(params["Key"])
        if model.name == "PutItem":
            key = {"pk": params["Item"]["pk"], "sk": params["Item"]["sk"]}
            self._before["size"] = self._size_of(key)

    def _after(self, parsed: dict[str, Any], model: Any, event_name: str, **_: Any) -> None:
        if not self.on:
            return
        service = event_name.split(".")[1]
        name = model.name
        self.ops[f"{service}.{name}"] += 1
        if service == "sqs" and name == "SendMessage":
            body = self._before.get("params", {}).get("MessageBody", "")
            self.sqs_chunks += max(1, math.ceil(len(body.encode()) / (64 * KB)))
        if service != "dynamodb":
            return
        params = self._before.get("params", {})
        if name == "PutItem":
            units = math.ceil(max(item_size(params["Item"]), self._before.get("size", 0)) / KB)
            self.wru += units
            self.wru_by["PutItem " + params["Item"]["sk"]["S"][:4]] += units
        elif name == "UpdateItem":
            after = self._size_of(params["Key"])
            self.wru += math.ceil(max(after, self._before.get("size", 0), 1) / KB)
        elif name == "GetItem":
            self.rru += self._read(self._size_of(params["Key"]), params.get("ConsistentRead", False))
        elif name == "BatchGetItem":
            for table, request in params["RequestItems"].items():
                found = parsed.get("Responses", {}).get(table, [])
                for item in found:
                    key = {"pk": item["sk"] and {"S": _pk_of(request, item)}, "sk": item["sk"]}
                    self.rru += self._read(self._size_of(key), request.get("ConsistentRead", False))
        elif name == "Query":
            keys = [
                {"pk": i["pk"], "sk": i["sk"]} for i in parsed.get("Items", []) if "pk" in i and "sk" in i
            ]
            total = sum(self._size_of(k) for k in keys) or sum(item_size(i) for i in parsed.get("Items", []))
            self.rru += self._read(total, params.get("ConsistentRead", False))
        elif name == "TransactWriteItems":
            for action in params["TransactItems"]:
                for body in action.values():
                    self.wru += 2 * math.ceil(max(item_size(body.get("Item")), 1) / KB)

    @staticmethod
    def _read(size: int, consistent: bool) -> float:
        units = math.ceil(max(size, 1) / (4 * KB))
        return units if consistent else units / 2


def _pk_of(request: dict[str, Any], item: dict[str, Any]) -> str:
    for key in request["Keys"]:
        if key["sk"] == item["sk"]:
            return str(key["pk"]["S"])
    raise KeyError(item["sk"])


def step_event(run_id: str, step: int, attempt: int) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "events" / "step_sqs.json").read_text())
    record = event["Records"][0]
    record["body"] = json.dumps({"run_id": run_id, "step": step, "attempt": attempt})
    record["attributes"]["MessageGroupId"] = run_id
    record["attributes"]["MessageDeduplicationId"] = f"{run_id}:{step}:{attempt}"
    return event


def counter_state(total: int) -> dict[str, Any]:
    each = max(total // 9 - 10, 1)
    return {"i": 0, **{f"value{n}": chr(ord("a") + n) * each for n in range(9)}}


COUNTER_GRAPH = {
    "name": "bench-state",
    "start_node": "a",
    "nodes": {"a": {"tool": "test.inc"}},
    "edges": {"a": [{"when": {"key": "i", "op": "<", "value": 1_000_000}, "to": "a"}, {"to": "__end__"}]},
}


def measure(steps: int) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from functions.shared import wiring
    from functions.step import app as step_app
    from local.lambda_context import LocalContext
    from local.resources import create_resources

    results: dict[str, Any] = {}
    with mock_aws():
        sqs, dynamodb, s3 = boto3.client("sqs"), boto3.client("dynamodb"), boto3.client("s3")
        resources = create_resources(dynamodb, sqs, s3)
        os.environ.update(
            TABLE_NAME=resources.table_name, BLOB_BUCKET=resources.bucket, STEP_QUEUE_URL=resources.queue_url
        )
        wiring.reset()
        service = wiring.service()
        meter = Meter(boto3.client("dynamodb"), resources.table_name)
        for service_name in ("dynamodb", "sqs", "s3"):
            # Older code cached the two forms the adapters ask for as two clients; watch each client once.
            forms = {id(c): c for c in (wiring.client(service_name), wiring.client(service_name, None, None))}
            for client in forms.values():
                meter.watch(client)
        counter = service.create_graph(COUNTER_GRAPH).graph_id
        quality = service.create_graph(
            json.loads((ROOT / "engine" / "graphs" / "data_quality.json").read_text())
        ).graph_id
        cases: list[tuple[str, str, dict[str, Any], int | None]] = [
            (name, counter, counter_state(size), steps) for name, size in SIZES.items()
        ]
        cases.append(("data-quality 1000", quality, {"records": 1000}, None))
        for name, graph_id, state, count in cases:
            run_id = service.start_run(graph_id, state).run_id
            meter.ops.clear()
            meter.wru = meter.rru = 0.0
            meter.wru_by.clear()
            meter.sqs_chunks = 0
            cpu = 0.0
            done = 0
            position = (0, 1)
            while count is None or done < count + 1:
                event = step_event(run_id, *position)
                meter.on = done > 0
                tick = time.process_time()
                with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                    out = step_app.lambda_handler(
                        event, LocalContext(function_name="bench", timeout_seconds=900)
                    )  # type: ignore[arg-type]
                spent = time.process_time() - tick
                meter.on = False
                assert not out["batchItemFailures"], out
                if done > 0:
                    cpu += spent
                done += 1
                run = service.runs.get_run(run_id)
                if run.status.terminal:
                    break
                position = run.position
            measured = done - 1
            ops = {op: n / measured for op, n in sorted(meter.ops.items())}
            cpu_ms = cpu / measured * 1000
            unknown = {op for op in ops if op.startswith("sqs.")} - {"sqs.SendMessage"}
            assert not unknown, f"price these SQS requests: {unknown}"
            sqs_requests = meter.sqs_chunks / measured + RECEIVE_AND_DELETE
            dollars = {
                "dynamodb": (meter.wru * PRICE["wru"] + meter.rru * PRICE["rru"]) / measured,
                "s3": ops.get("s3.PutObject", 0) * PRICE["s3_put"]
                + ops.get("s3.GetObject", 0) * PRICE["s3_get"],
                "sqs": sqs_requests * PRICE["sqs"],
                "lambda": PRICE["lambda_request"] + cpu_ms / 1000 * MEMORY_GB * PRICE["gb_second"],
            }
            results[name] = {
                "steps": measured,
                "wru": meter.wru / measured,
                "wru_by": {k: v / measured for k, v in meter.wru_by.items()},
                "rru": meter.rru / measured,
                "requests": ops,
                "sqs_requests": sqs_requests,
                "cpu_ms": cpu_ms,
                "usd_per_million": {k: v * 1e6 for k, v in dollars.items()},
                "total_per_million": sum(dollars.values()) * 1e6,
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=12, help="measured steps per size case")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose code is measured")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    os.chdir(args.code)
    os.environ.update(BENCH_ENV)
    import engine

    code = str(Path(engine.__file__).resolve().parent.parent)
    results = measure(args.steps)
    if args.json:
        print(json.dumps({"code": code, "results": results}))
        return
    print(f"code measured: {code}")
    print(f"{'case':<18} {'WRU':>6} {'RRU':>6} {'S3 put':>6} {'S3 get':>6} {'CPU ms':>7} {'$/M steps':>9}")
    for name, r in results.items():
        req = r["requests"]
        print(
            f"{name:<18} {r['wru']:6.2f} {r['rru']:6.2f} {req.get('s3.PutObject', 0):6.2f}"
            f" {req.get('s3.GetObject', 0):6.2f} {r['cpu_ms']:7.2f} {r['total_per_million']:9.2f}"
        )
    ratio = results["10MB"]["cpu_ms"] / max(results["1KB"]["cpu_ms"], 1e-9)
    print(
        f"CPU 10 MB / 1 KB: {ratio:.2f}x (target <= 3x); targets: <= ${TARGET_PER_MILLION} per million steps"
    )
    print(f"at every size, data-quality <= ${DATA_QUALITY_TARGET}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
