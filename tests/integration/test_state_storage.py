"""The DynamoDB state layout on moto: a small run item, values written before the commit, lazy reads.

See :mod:`engine.aws.state` for the layout and why it holds under crashes and races.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from engine.aws.dynamodb import DynamoStore
from engine.aws.s3 import S3BlobStore
from engine.aws.sqs import SqsStepQueue
from engine.aws.state import VALUE_PREFIX, parse_entry
from engine.errors import StaleStepError
from engine.model import StepMessage
from engine.registry import ToolContext, ToolRegistry
from engine.service import StepDisposition, WorkflowService
from tests.contract.factories import changes_for, new_run, step, step_records
from tests.integration.conftest import AwsEnv

KB = 1024
TEN_VALUES = {f"v{i}": "x" * (10 * KB) for i in range(10)}
BIG_VALUES = {f"b{i}": "y" * (100 * KB) for i in range(3)}


class Requests:
    """The operations sent through the clients, in order, while ``on``."""

    def __init__(self, aws: AwsEnv) -> None:
        self.names: list[str] = []
        self.on = False
        for service, client in (("dynamodb", aws.dynamodb), ("s3", aws.s3)):
            client.meta.events.register(f"before-call.{service}.*", self._record(service))

    def _record(self, service: str) -> Any:
        def record(model: Any, **_: Any) -> None:
            if self.on:
                self.names.append(f"{service}.{model.name}")

        return record


@pytest.fixture
def requests(aws: AwsEnv) -> Iterator[Requests]:
    yield Requests(aws)


def new_store(aws: AwsEnv, **options: Any) -> DynamoStore:
    """A store with nothing in memory (a fresh execution environment) on the shared table and bucket."""
    return DynamoStore(
        aws.dynamodb, aws.resources.table_name, blobs=S3BlobStore(aws.s3, aws.resources.bucket), **options
    )


def items(aws: AwsEnv, pk: str) -> list[dict[str, Any]]:
    out = aws.dynamodb.query(
        TableName=aws.resources.table_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
        ConsistentRead=True,
    )
    found: list[dict[str, Any]] = out["Items"]
    return found


def run_item(aws: AwsEnv, run_id: str) -> dict[str, Any]:
    (item,) = [i for i in items(aws, f"RUN#{run_id}") if i["sk"]["S"] == "RUN"]
    return item


def value_items(aws: AwsEnv, run_id: str) -> list[dict[str, Any]]:
    return [i for i in items(aws, f"RUN#{run_id}") if i["sk"]["S"].startswith(VALUE_PREFIX)]


def value_text(item: dict[str, Any]) -> str:
    return zlib.decompress(item["z"]["B"]).decode() if "z" in item else str(item["v"]["S"])


def size(item: dict[str, Any]) -> int:
    return sum(
        len(name.encode()) + len(json.dumps(value, default=len).encode()) for name, value in item.items()
    )


def registry() -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool("t.count")
    def count(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"i": state["i"] + 1}

    return tools


LOOP = {
    "name": "loop",
    "start_node": "a",
    "nodes": {"a": {"tool": "t.count"}},
    "edges": {"a": [{"when": {"key": "i", "op": "<", "value": 3}, "to": "a"}, {"to": "__end__"}]},
}


def test_the_run_item_holds_a_manifest_not_the_values(aws: AwsEnv) -> None:
    store = new_store(aws)
    run, records = new_run(state={**TEN_VALUES, **BIG_VALUES, "i": 0})
    run = store.create_run(run, records)

    item = run_item(aws, run.run_id)
    assert size(item) < 3 * KB
    kinds = {k: parse_entry(v["S"]).kind for k, v in item["state"]["M"].items()}
    assert kinds == {"i": "inline", **dict.fromkeys(TEN_VALUES, "i"), **dict.fromkeys(BIG_VALUES, "s")}
    assert len(value_items(aws, run.run_id)) == 1  # the ten values are one content
    assert new_store(aws).get_run(run.run_id).state == {**TEN_VALUES, **BIG_VALUES, "i": 0}


def test_a_commit_writes_only_the_values_it_changes(aws: AwsEnv, requests: Requests) -> None:
    store = new_store(aws)
    run, records = new_run(state={**TEN_VALUES, "i": 0})
    run = store.create_run(run, records)
    fresh = new_store(aws)
    at = fresh.get_run(run.run_id)

    requests.on = True
    committed = step(fresh, at, {"v3": "z" * (10 * KB), "i": 1})
    requests.on = False

    assert requests.names == ["dynamodb.PutItem", "dynamodb.PutItem", "dynamodb.UpdateItem"]
    assert committed.state == {**TEN_VALUES, "v3": "z" * (10 * KB), "i": 1}
    assert size(run_item(aws, run.run_id)) < 3 * KB


def test_a_step_whose_tool_reads_one_key_fetches_no_other_value(aws: AwsEnv, requests: Requests) -> None:
    store = new_store(aws)
    workflow = WorkflowService(
        graphs=store, runs=store, queue=SqsStepQueue(aws.sqs, aws.resources.queue_url), registry=registry()
    )
    workflow.create_graph(LOOP, graph_id="loop")
    run = workflow.start_run("loop", {**TEN_VALUES, **BIG_VALUES, "i": 0})

    cold_store = new_store(aws)
    cold = WorkflowService(
        graphs=cold_store,
        runs=cold_store,
        queue=SqsStepQueue(aws.sqs, aws.resources.queue_url),
        registry=registry(),
    )
    cold.compiled("loop", 1)
    requests.on = True
    result = cold.run_step(StepMessage(run_id=run.run_id, step=0))
    requests.on = False

    assert result.disposition is StepDisposition.COMMITTED
    assert requests.names == ["dynamodb.GetItem", "dynamodb.PutItem", "dynamodb.UpdateItem"]
    assert sorted(result.run.state.unloaded()) == sorted([*TEN_VALUES, *BIG_VALUES])  # type: ignore[attr-defined]


def test_reading_one_key_fetches_that_value_only(aws: AwsEnv, requests: Requests) -> None:
    store = new_store(aws)
    run, records = new_run(state={**TEN_VALUES, **BIG_VALUES, "other": "o" * (2 * KB), "i": 0})
    run = store.create_run(run, records)
    cold = new_store(aws)

    requests.on = True
    state = cold.get_run(run.run_id).state
    assert sorted(state) == sorted([*TEN_VALUES, *BIG_VALUES, "other", "i"])
    assert requests.names == ["dynamodb.GetItem"]
    assert state["b1"] == "y" * (100 * KB)
    assert requests.names == ["dynamodb.GetItem", "s3.GetObject"]
    assert state["other"] == "o" * (2 * KB)
    assert requests.names == ["dynamodb.GetItem", "s3.GetObject", "dynamodb.BatchGetItem"]
    requests.on = False


def test_a_crash_between_writing_a_value_and_the_commit_leaves_the_committed_state(aws: AwsEnv) -> None:
    store = new_store(aws)
    run, records = new_run(state={**TEN_VALUES, "i": 0})
    run = store.create_run(run, records)
    crashing = new_store(aws)
    crashing.get_run(run.run_id)

    def crash(**_: Any) -> None:
        raise RuntimeError("the process died before its commit")

    aws.dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", crash)
    with pytest.raises(RuntimeError):
        step(crashing, run, {"v0": "new" * 5000, "i": 1})
    aws.dynamodb.meta.events.unregister("before-call.dynamodb.UpdateItem", crash)

    assert len(value_items(aws, run.run_id)) == 2  # the orphan was written
    orphan = [i for i in value_items(aws, run.run_id) if "new" in value_text(i)]
    assert orphan and int(orphan[0]["expires_at"]["N"]) > 0
    reader = new_store(aws)
    assert reader.get_run(run.run_id) == run
    assert reader.get_run(run.run_id).state == {**TEN_VALUES, "i": 0}
    # and the run goes on from where it committed
    committed = step(reader, run, {"v1": "later" * 3000, "i": 1})
    assert committed.state == {**TEN_VALUES, "v1": "later" * 3000, "i": 1}


def test_two_workers_at_one_position_leave_the_winners_values(aws: AwsEnv) -> None:
    store = new_store(aws)
    run, records = new_run(state={**TEN_VALUES, "i": 0})
    run = store.create_run(run, records)
    first, second = new_store(aws), new_store(aws)
    first.get_run(run.run_id)
    second.get_run(run.run_id)

    winner = step(first, run, {"v0": "first" * 2000, "big": "F" * (100 * KB), "i": 1})
    with pytest.raises(StaleStepError):
        step(second, run, {"v0": "second" * 2000, "big": "S" * (100 * KB), "i": 1})

    expected = {**TEN_VALUES, "v0": "first" * 2000, "big": "F" * (100 * KB), "i": 1}
    assert winner.state == expected
    assert new_store(aws).get_run(run.run_id).state == expected
    assert new_store(aws).get_run(run.run_id).position == winner.position
    texts = [value_text(i) for i in value_items(aws, run.run_id)]
    assert any("second" in t for t in texts)  # the loser's value exists, and nothing points at it
    s3 = aws.s3.list_objects_v2(Bucket=aws.resources.bucket)["Contents"]
    assert len(s3) == 2  # both large values were uploaded; the manifest names the winner's


def test_a_commit_renews_values_that_would_expire_within_the_ttl(aws: AwsEnv) -> None:
    store = new_store(aws, ttl_days=1)
    run, records = new_run(state={**TEN_VALUES, "i": 0})
    run = store.create_run(run, records)
    (written,) = value_items(aws, run.run_id)
    assert int(run_item(aws, run.run_id)["values_until"]["N"]) <= int(written["expires_at"]["N"])

    longer = new_store(aws, ttl_days=10)  # values kept for 2 days expire within its 10
    longer.get_run(run.run_id)
    first = step(longer, run, {"i": 1})

    (renewed,) = value_items(aws, run.run_id)
    until = int(run_item(aws, run.run_id)["values_until"]["N"])
    assert int(renewed["expires_at"]["N"]) >= until > int(written["expires_at"]["N"]) + 10 * 86_400
    assert new_store(aws).get_run(run.run_id).state == {**TEN_VALUES, "i": 1}

    step(longer, first, {"i": 2})  # renewed: nothing to rewrite now
    (again,) = value_items(aws, run.run_id)
    assert again["expires_at"] == renewed["expires_at"]


def test_a_user_value_shaped_like_a_reference_stays_a_value(aws: AwsEnv) -> None:
    store = new_store(aws)
    tricky = "@i:AAAAAAAAAAAAAAAAAAAAAA:1"
    run, records = new_run(state={"r": tricky, "b": {"$blob": "sha256/00"}})
    run = store.create_run(run, records)
    assert new_store(aws).get_run(run.run_id).state == {"r": tricky, "b": {"$blob": "sha256/00"}}


def test_commit_asks_for_the_old_item_not_the_new_one(aws: AwsEnv) -> None:
    store = new_store(aws)
    run, records = new_run(state={"i": 0})
    run = store.create_run(run, records)
    sent: list[dict[str, Any]] = []

    def keep(params: dict[str, Any], **_: Any) -> None:
        sent.append(params)

    aws.dynamodb.meta.events.register("before-parameter-build.dynamodb.UpdateItem", keep)
    store.commit(run, changes_for(run, step_records(run, 1)), step_records(run, 1))
    assert [p["ReturnValues"] for p in sent] == ["ALL_OLD"]


def test_value_items_are_stored_compressed_when_that_is_smaller(aws: AwsEnv) -> None:
    store = new_store(aws)
    rows = [{"id": i, "name": f"customer {i}", "email": f"c{i}@example.com"} for i in range(150)]
    run, records = new_run(state={"rows": rows, "i": 0})
    run = store.create_run(run, records)
    (item,) = value_items(aws, run.run_id)
    assert len(item["z"]["B"]) < len(json.dumps(rows)) / 3
    assert json.loads(value_text(item)) == rows
    assert new_store(aws).get_run(run.run_id).state == {"rows": rows, "i": 0}


def test_a_run_item_written_with_values_inline_moves_them_out_at_its_next_commit(aws: AwsEnv) -> None:
    store = new_store(aws)
    run, records = new_run(state={"i": 0})
    run = store.create_run(run, records)
    old_values = {f"old{n}": f"{n}" * 5000 for n in range(5)}  # as the previous layout stored them
    aws.dynamodb.update_item(
        TableName=aws.resources.table_name,
        Key={"pk": {"S": f"RUN#{run.run_id}"}, "sk": {"S": "RUN"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={
            ":s": {"M": {"i": {"S": "0"}, **{k: {"S": json.dumps(v)} for k, v in old_values.items()}}}
        },
    )
    reader = new_store(aws)
    read = reader.get_run(run.run_id)
    assert read.state == {"i": 0, **old_values}

    step(reader, read, {"i": 1})
    assert size(run_item(aws, run.run_id)) < 2 * KB
    assert new_store(aws).get_run(run.run_id).state == {"i": 1, **old_values}
