"""Cold start to the first response: the step and API handlers against a minimal boto3 handler.

Each sample is a fresh interpreter that imports a handler module, makes its
clients and answers one request against a moto server on loopback, and prints
the time from before its first import to the handler's return, and the part of
it that the imports took (interpreter start-up is not counted: it is the same
for every handler). The interpreter runs with ``-S`` and the repository and
site-packages on ``PYTHONPATH``, as Lambda puts the code and the layer on
``sys.path``; bytecode is written and read as usual, as the built artifacts
ship it (``make sam-build`` compiles it in). ``--no-bytecode`` reads and writes
none (an empty ``PYTHONPYCACHEPREFIX``), so every module is compiled at every
start: what a cold start costs where nothing ships bytecode. Tracing is off.

* ``step``: ``functions.step.app`` with ``events/step_sqs.json`` for a new run
  of the Data Quality Pipeline (10 records) at its first step: it reads the
  run, runs ``dq.initialize``, commits and sends the next step.
* ``boto3 step``: the minimal handler making the same requests: DynamoDB
  ``GetItem``, ``PutItem`` and ``UpdateItem``, SQS ``SendMessage``.
* ``api``: ``functions.api.app`` with ``events/api_get_run.json`` (``GET /runs/{id}``).
* ``boto3 api``: the minimal handler making the same request: DynamoDB
  ``GetItem`` of the run, answered as JSON.

``--build-dir DIR`` runs what ``sam build`` made instead of the repository:
each handler from its function's artifact (``StepFunction``, ``ApiFunction``)
with the built ``DependenciesLayer`` after it on ``PYTHONPATH``, the minimal
handlers with the layer alone, all under ``--python`` (the artifacts' bytecode is
for python3.12) and without writing bytecode, as Lambda's read-only code and
layer directories allow none: a module without shipped bytecode is compiled at
every start. Build for this machine's architecture (``make sam-build-local``
builds x86_64 into ``.aws-sam/build-x86_64``).

The cases take turns in every round, so load from elsewhere on the machine
slows all of them; medians count. Target: step and API at most 1.5x their
minimal handler. The last line printed is JSON.

Usage: ``.venv/bin/python bench/cold_start.py [--rounds 15] [--build-dir DIR --python python3.12]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_RATIO = 1.5
EVENTS = ROOT / "events"
EXAMPLE_RUN_ID = "0f5a2f3c9b8e4d7a8c1e2b3a4d5e6f70"

PRELUDE = """\
import time
_t0 = time.perf_counter()
"""
REPORT = """\
_t2 = time.perf_counter()
print("COLD", (_t1 - _t0) * 1000, (_t2 - _t0) * 1000)
"""
CONTEXT = """\
class Context:
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench-request"
    log_group_name = log_stream_name = "bench"
    def get_remaining_time_in_millis(self):
        return 30000
"""
HANDLER = {
    "step": """\
import json, sys
from functions.step.app import lambda_handler
_t1 = time.perf_counter()
out = lambda_handler(json.loads(sys.argv[1]), Context())
assert not out["batchItemFailures"], out
""",
    "api": """\
import json, sys
from functions.api.app import lambda_handler
_t1 = time.perf_counter()
out = lambda_handler(json.loads(sys.argv[1]), Context())
assert out["statusCode"] == 200, out
""",
    "boto3 step": """\
import json, os, sys
import boto3
TABLE = os.environ["TABLE_NAME"]
QUEUE = os.environ["STEP_QUEUE_URL"]
dynamodb = boto3.client("dynamodb")
sqs = boto3.client("sqs")

def lambda_handler(event, context):
    message = json.loads(event["Records"][0]["body"])
    key = {"pk": {"S": "RUN#" + message["run_id"]}, "sk": {"S": "RUN"}}
    run = dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
    step = int(run["step"]["N"])
    log = {"pk": key["pk"], "sk": {"S": "BENCH#%010d" % step}, "recs": {"L": [{"S": "{}"}]}}
    dynamodb.put_item(TableName=TABLE, Item=log)
    dynamodb.update_item(
        TableName=TABLE, Key=key, UpdateExpression="SET step = :next", ConditionExpression="step = :step",
        ExpressionAttributeValues={":next": {"N": str(step + 1)}, ":step": {"N": str(step)}},
    )
    sqs.send_message(
        QueueUrl=QUEUE, MessageBody=json.dumps({**message, "step": step + 1}),
        MessageGroupId=message["run_id"], MessageDeduplicationId="%s:%d:bench" % (message["run_id"], step + 1),
    )
    return {"batchItemFailures": []}

_t1 = time.perf_counter()
out = lambda_handler(json.loads(sys.argv[1]), Context())
""",
    "boto3 api": """\
import json, os, sys
import boto3
TABLE = os.environ["TABLE_NAME"]
dynamodb = boto3.client("dynamodb")

def lambda_handler(event, context):
    key = {"pk": {"S": "RUN#" + event["pathParameters"]["proxy"].split("/")[1]}, "sk": {"S": "RUN"}}
    item = dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
    return {"statusCode": 200, "body": json.dumps({k: v.get("S") or v.get("N") for k, v in item.items()})}

_t1 = time.perf_counter()
out = lambda_handler(json.loads(sys.argv[1]), Context())
assert out["statusCode"] == 200, out
""",
}
PAIRS = {"step": "boto3 step", "api": "boto3 api"}
ARTIFACTS = {"step": "StepFunction", "api": "ApiFunction"}
"""The function of the built template whose artifact each handler case runs from (``--build-dir``)."""


def _event(name: str, run_id: str) -> str:
    return (EVENTS / name).read_text().replace(EXAMPLE_RUN_ID, run_id)


def _caller(name: str) -> str:
    """The IAM caller an API sample event carries: the owner the bench's runs need."""
    caller: str = json.loads((EVENTS / name).read_text())["requestContext"]["authorizer"]["iam"]["userArn"]
    return caller


class Bench:
    """A moto server with the template's resources, and runs for the handlers to work on."""

    def __init__(self, build_dir: Path | None = None, python: str = sys.executable) -> None:
        from local.moto_server import MotoServer

        self.build_dir = None if build_dir is None else build_dir.resolve()
        self.python = python

        self.empty = tempfile.mkdtemp(prefix="cold-start-")
        self.server = MotoServer().start()
        self.env = {
            "AWS_ENDPOINT_URL": self.server.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "bench",
            "POWERTOOLS_SERVICE_NAME": "bench",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        os.environ.update(self.env)
        import boto3

        from functions.shared import wiring
        from local.resources import create_resources

        resources = create_resources(boto3.client("dynamodb"), boto3.client("sqs"), boto3.client("s3"))
        self.env.update(
            TABLE_NAME=resources.table_name,
            BLOB_BUCKET=resources.bucket,
            STEP_QUEUE_URL=resources.queue_url,
        )
        os.environ.update(self.env)
        wiring.reset()
        self.service = wiring.service()
        definition = json.loads((ROOT / "engine" / "graphs" / "data_quality.json").read_text())
        self.caller = _caller("api_get_run.json")
        self.graph_id = self.service.create_graph(definition, owner=self.caller).graph_id
        self.api_run = self.new_run()

    def new_run(self) -> str:
        return self.service.start_run(self.graph_id, {"records": 10}, owner=self.caller).run_id

    def event(self, case: str) -> str:
        if case in ("step", "boto3 step"):
            return _event("step_sqs.json", self.new_run())
        return _event("api_get_run.json", self.api_run)

    def path(self, case: str) -> tuple[list[str], Path]:
        """``PYTHONPATH`` and working directory of ``case``: the repository's, or the built artifact's."""
        if self.build_dir is None:
            return [str(ROOT), sysconfig.get_paths()["purelib"]], ROOT
        layer = str(self.build_dir / "DependenciesLayer" / "python")
        if case in ARTIFACTS:
            code = self.build_dir / ARTIFACTS[case]
            return [str(code), layer], code
        return [layer], Path(self.empty)

    def sample(self, case: str, bytecode: bool = True) -> tuple[float, float]:
        """(init ms: imports and module code; total ms) of one cold start of ``case`` in a fresh interpreter."""
        no_bytecode = {} if bytecode else {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": self.empty}
        if self.build_dir is not None:
            no_bytecode.setdefault("PYTHONDONTWRITEBYTECODE", "1")
        path, cwd = self.path(case)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "PYTHONPATH": os.pathsep.join(path),
            **self.env,
            **no_bytecode,
        }
        code = PRELUDE + CONTEXT + HANDLER[case] + REPORT
        out = subprocess.run(
            [self.python, "-S", "-c", code, self.event(case)],
            cwd=cwd,
            env=env,
            check=False,
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"the {case!r} sample failed:\n{out.stderr[-3000:]}")
        line = next(line for line in reversed(out.stdout.splitlines()) if line.startswith("COLD "))
        _, imports, total = line.split()
        return float(imports), float(total)

    def stop(self) -> None:
        self.server.stop()
        os.rmdir(self.empty)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--rounds", type=int, default=15, help="samples per case, taken in turns")
    parser.add_argument("--no-bytecode", action="store_true", help="compile every module at every start")
    parser.add_argument(
        "--build-dir",
        type=Path,
        help="run the artifacts and the layer `sam build` made there, writing no bytecode",
    )
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter of the samples (python3.12 for --build-dir)"
    )
    args = parser.parse_args(argv)
    if args.build_dir is not None:
        missing = [
            d for d in (*ARTIFACTS.values(), "DependenciesLayer/python") if not (args.build_dir / d).is_dir()
        ]
        if missing:
            parser.error(f"{args.build_dir} has no {', '.join(missing)}: run `make sam-build-local` first")
    bench = Bench(args.build_dir, args.python)
    try:
        cases = list(HANDLER)
        for case in cases:
            bench.sample(case)
        samples: dict[str, list[tuple[float, float]]] = {case: [] for case in cases}
        for round_ in range(args.rounds):
            shift = round_ % len(cases)
            for case in cases[shift:] + cases[:shift]:
                samples[case].append(bench.sample(case, bytecode=not args.no_bytecode))
    finally:
        bench.stop()

    medians = {
        case: {
            "total_ms": round(statistics.median(t for _, t in values), 1),
            "import_ms": round(statistics.median(i for i, _ in values), 1),
            "request_ms": round(statistics.median(t - i for i, t in values), 1),
        }
        for case, values in samples.items()
    }
    ratios = {
        case: round(medians[case]["total_ms"] / medians[base]["total_ms"], 2) for case, base in PAIRS.items()
    }
    print(f"{'case':<12}{'total ms':>10}{'init':>10}{'first request':>19}{'x minimal':>11}")
    for case, figures in medians.items():
        ratio = ratios.get(case)
        verdict = "" if ratio is None else f"{ratio:>11.2f} {'ok' if ratio <= TARGET_RATIO else 'MISS'}"
        print(
            f"{case:<12}{figures['total_ms']:>10.1f}{figures['import_ms']:>10.1f}"
            f"{figures['request_ms']:>19.1f}{verdict}"
        )
    results: dict[str, Any] = {
        "benchmark": "cold_start.first_response",
        "rounds": args.rounds,
        "bytecode": not args.no_bytecode,
        "build_dir": None if args.build_dir is None else str(args.build_dir),
        "python": args.python,
        "median": medians,
        "ratio": ratios,
        "target_ratio": TARGET_RATIO,
        "meets_target": all(r <= TARGET_RATIO for r in ratios.values()),
    }
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
