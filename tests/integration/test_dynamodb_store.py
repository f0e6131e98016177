"""DynamoStore on moto: the requests a step makes, the item layout, offloading and crash leftovers.

What every store must do is in ``tests/contract``; this file holds what is
particular to DynamoDB: how many requests, which items, how large.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.aws.dynamodb import STATE_BUDGET, DynamoStore
from engine.aws.runlog import RECORDS_PER_ITEM
from engine.aws.s3 import S3BlobStore
from engine.aws.sqs import SqsStepQueue
from engine.errors import PayloadTooLargeError, StaleStepError
from engine.model import RunStatus, StepMessage
from engine.registry import ToolContext, ToolRegistry
from engine.service import LOCAL_OWNER, StepDisposition, WorkflowService
from tests.contract.factories import OWNER, changes_for, new_run, step, step_records, unread
from tests.integration.conftest import AwsEnv

MB = 1024 * 1024


@dataclass
class Calls:
    """The operations each client sent, in order, and the DynamoDB request parameters, while recording."""

    names: dict[str, list[str]] = field(default_factory=lambda: {"dynamodb": [], "sqs": [], "s3": []})
    params: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    recording: bool = False

    def clear(self) -> None:
        for names in self.names.values():
            names.clear()
        self.params.clear()


@pytest.fixture
def calls(aws: AwsEnv) -> Calls:
    recorded = Calls()

    def hook(service: str) -> Any:
        def record(model: Any, **_: Any) -> None:
            if recorded.recording:
                recorded.names[service].append(model.name)

        return record

    def keep_params(model: Any, params: dict[str, Any], **_: Any) -> None:
        if recorded.recording:
            recorded.params.append((model.name, params))

    for service, client in (("dynamodb", aws.dynamodb), ("sqs", aws.sqs), ("s3", aws.s3)):
        client.meta.events.register(f"before-call.{service}.*", hook(service))
    aws.dynamodb.meta.events.register("before-parameter-build.dynamodb.*", keep_params)
    return recorded


@pytest.fixture
def store(aws: AwsEnv) -> DynamoStore:
    return DynamoStore(
        aws.dynamodb, aws.resources.table_name, blobs=S3BlobStore(aws.s3, aws.resources.bucket)
    )


def new_store(aws: AwsEnv, *, blobs: bool = True) -> DynamoStore:
    """Another store on the same table: a fresh execution environment with nothing in memory."""
    return DynamoStore(
        aws.dynamodb,
        aws.resources.table_name,
        blobs=S3BlobStore(aws.s3, aws.resources.bucket) if blobs else None,
    )


def registry() -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool("t.inc")
    def inc(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"i": state.get("i", 0) + 1}

    @tools.tool("t.touch")
    def touch(state: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"big": state["big"], "i": state["i"] + 1}

    return tools


COUNTER = {
    "name": "counter",
    "start_node": "a",
    "nodes": {"a": {"tool": "t.inc"}, "b": {"tool": "t.inc"}},
    "edges": {"a": "b"},
}
TOUCH_LOOP = {
    "name": "touch",
    "start_node": "a",
    "nodes": {"a": {"tool": "t.touch"}},
    "edges": {"a": [{"when": {"key": "i", "op": "<", "value": 4}, "to": "a"}, {"to": "__end__"}]},
}


def service(aws: AwsEnv, store: DynamoStore) -> WorkflowService:
    return WorkflowService(
        graphs=store,
        runs=store,
        queue=SqsStepQueue(aws.sqs, aws.resources.queue_url),
        registry=registry(),
    )


@pytest.fixture
def recording(calls: Calls) -> Iterator[Calls]:
    calls.clear()
    calls.recording = True
    yield calls
    calls.recording = False


def drain(aws: AwsEnv) -> list[dict[str, Any]]:
    out = aws.sqs.receive_message(
        QueueUrl=aws.resources.queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )
    messages: list[dict[str, Any]] = out.get("Messages", [])
    for message in messages:
        aws.sqs.delete_message(QueueUrl=aws.resources.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return messages


def raw_items(aws: AwsEnv, pk: str) -> list[dict[str, Any]]:
    out = aws.dynamodb.query(
        TableName=aws.resources.table_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
    )
    items: list[dict[str, Any]] = out["Items"]
    return items


def item_size(item: dict[str, Any]) -> int:
    """An upper bound of DynamoDB's size of an item: names plus the JSON of the values."""
    return sum(len(name.encode()) + len(json.dumps(value).encode()) for name, value in item.items())


# requests per step


def test_a_step_is_one_read_one_log_write_one_conditional_update_and_one_send(
    aws: AwsEnv, store: DynamoStore, calls: Calls
) -> None:
    workflow = service(aws, store)
    workflow.create_graph(COUNTER, graph_id="counter")
    run = workflow.start_run("counter", {"i": 0, "note": "small"})
    drain(aws)

    calls.clear()
    calls.recording = True
    result = workflow.run_step(StepMessage(run_id=run.run_id, step=0))
    calls.recording = False

    assert result.disposition is StepDisposition.COMMITTED
    assert calls.names == {"dynamodb": ["GetItem", "PutItem", "UpdateItem"], "sqs": ["SendMessage"], "s3": []}
    assert workflow.get_run(run.run_id).state == {"i": 1, "note": "small"}


def test_the_last_step_of_a_run_makes_no_send(aws: AwsEnv, store: DynamoStore, calls: Calls) -> None:
    workflow = service(aws, store)
    workflow.create_graph(COUNTER, graph_id="counter")
    run = workflow.start_run("counter", {"i": 0})
    workflow.run_step(StepMessage(run_id=run.run_id, step=0))

    calls.clear()
    calls.recording = True
    result = workflow.run_step(StepMessage(run_id=run.run_id, step=1))
    calls.recording = False

    assert result.run.status is RunStatus.SUCCEEDED
    assert calls.names["dynamodb"] == ["GetItem", "PutItem", "UpdateItem"]
    assert calls.names["sqs"] == []


def test_commit_from_a_store_that_never_read_the_run_needs_no_read_the_run_carries_it(
    aws: AwsEnv, store: DynamoStore, recording: Calls
) -> None:
    run, records = new_run(state={"a": 1})
    run = store.create_run(run, records)
    other = new_store(aws)

    recording.clear()
    committed = step(other, run, {"a": 2})

    assert recording.names["dynamodb"] == ["PutItem", "UpdateItem"]
    assert committed.state == {"a": 2}
    assert store.get_run(run.run_id) == committed


def test_a_stale_commit_from_a_store_that_never_read_the_run_writes_nothing(
    aws: AwsEnv, store: DynamoStore, recording: Calls
) -> None:
    run, records = new_run()
    run = store.create_run(run, records)
    step(store, run)

    recording.clear()
    with pytest.raises(StaleStepError):
        step(new_store(aws), run, {"late": True})
    assert recording.names["dynamodb"] == ["PutItem", "UpdateItem"]
    assert store.get_run(run.run_id).state == {}


def test_commit_sets_only_the_changed_state_keys(store: DynamoStore, recording: Calls) -> None:
    run, records = new_run(state={"a": 1, "b": 2, "c": {"deep": [1, 2]}})
    run = store.create_run(run, records)

    recording.clear()
    step(store, store.get_run(run.run_id), {"b": 3})

    (update,) = [params for name, params in recording.params if name == "UpdateItem"]
    names = set(update["ExpressionAttributeNames"].values())
    assert {"a", "b", "c"} & names == {"b"}
    written = json.dumps(update["ExpressionAttributeValues"])
    assert "deep" not in written


def test_list_logs_is_one_read_and_one_query(store: DynamoStore, recording: Calls) -> None:
    run, records = new_run()
    run = store.create_run(run, records)
    for _ in range(5):
        run = step(store, run)

    recording.clear()
    logs = store.list_logs(run.run_id, after=7, limit=5)

    assert [r.seq for r in logs] == [8, 9, 10, 11, 12]
    assert recording.names["dynamodb"] == ["GetItem", "Query"]


def test_a_log_page_reads_about_as_many_items_as_hold_its_records(aws: AwsEnv, store: DynamoStore) -> None:
    read: list[int] = []

    def count(parsed: dict[str, Any], **_: Any) -> None:
        read.append(len(parsed.get("Items", [])))

    run, records = new_run()
    run = store.create_run(run, records)
    for i in range(60):
        run = step(store, run, count=5 if i % 10 == 9 else 3)
    aws.dynamodb.meta.events.register("after-call.dynamodb.Query", count)

    pages = {(-1, 100): 35, (89, 100): 46, (150, 20): 19}
    for (after, limit), most in pages.items():
        read.clear()
        logs = store.list_logs(run.run_id, after=after, limit=limit)
        assert [r.seq for r in logs] == list(range(after + 1, after + 1 + limit))
        assert sum(read) <= most, (after, limit, read)
        assert len(read) <= 2, (after, limit, read)

    read.clear()
    everything = store.list_logs(run.run_id)
    assert [r.seq for r in everything] == list(range(run.next_seq))
    assert sum(read) <= 62, read


# items


def test_item_layout(aws: AwsEnv, store: DynamoStore) -> None:
    workflow = service(aws, store)
    workflow.create_graph(COUNTER, graph_id="counter")
    run = workflow.start_run("counter", {"i": 0}, idempotency_key="key-1")
    workflow.run_step(StepMessage(run_id=run.run_id, step=0))
    store.add_subscriber(run.run_id, "conn-1")
    store.add_connection("conn-1", run.run_id)

    (version,) = raw_items(aws, "GRAPH#counter")
    assert version["sk"] == {"S": "V#00000001"}
    assert json.loads(version["definition"]["S"])["name"] == "counter"
    assert version["owner"] == {"S": LOCAL_OWNER}
    (listed,) = raw_items(aws, f"GRAPHS#{LOCAL_OWNER}")
    assert listed["sk"] == {"S": "G#counter"}
    (idem,) = raw_items(aws, f"IDEM#{LOCAL_OWNER}#key-1")
    assert idem["run_id"] == {"S": run.run_id}
    assert "expires_at" in idem
    (conn,) = raw_items(aws, "CONN#conn-1")
    assert conn["sk"] == {"S": f"RUN#{run.run_id}"}
    assert int(conn["expires_at"]["N"]) > 0

    items = raw_items(aws, f"RUN#{run.run_id}")
    (item,) = [i for i in items if i["sk"]["S"] == "RUN"]
    assert item["state"] == {"M": {"i": {"S": "1"}}}
    assert item["status"] == {"S": "RUNNING"}
    assert item["subs"] == {"SS": ["conn-1"]}
    assert item["owner"] == {"S": LOCAL_OWNER}
    assert "expires_at" not in item
    logs = [i for i in items if i["sk"]["S"].startswith("LOG#")]
    assert [i["sk"]["S"][:14] for i in logs] == ["LOG#0000000000", "LOG#0000000001"]
    assert all("expires_at" in i for i in logs)
    assert logs[1]["prev"]["S"] == logs[0]["sk"]["S"].split("#")[2]
    assert item["log_token"]["S"] == logs[1]["sk"]["S"].split("#")[2]
    assert [json.loads(r["S"])["seq"] for r in logs[1]["recs"]["L"]] == [1, 2, 3]

    workflow.run_step(StepMessage(run_id=run.run_id, step=1))
    (item,) = [i for i in raw_items(aws, f"RUN#{run.run_id}") if i["sk"]["S"] == "RUN"]
    assert item["status"] == {"S": "SUCCEEDED"}
    assert "expires_at" in item


def test_a_commit_with_many_records_splits_them_over_items(aws: AwsEnv, store: DynamoStore) -> None:
    run, records = new_run()
    run = store.create_run(run, records)
    committed = step(store, run, count=RECORDS_PER_ITEM * 2 + 5)

    logs = [i for i in raw_items(aws, f"RUN#{run.run_id}") if i["sk"]["S"].startswith("LOG#")]
    assert [len(i["recs"]["L"]) for i in logs] == [1, RECORDS_PER_ITEM, RECORDS_PER_ITEM, 5]
    assert [r.seq for r in store.list_logs(run.run_id)] == list(range(committed.next_seq))


# crashes and races


def test_records_of_a_crashed_commit_stay_invisible(aws: AwsEnv, store: DynamoStore) -> None:
    run, records = new_run()
    run = store.create_run(run, records)
    read = store.get_run(run.run_id)

    def crash(**_: Any) -> None:
        raise RuntimeError("the worker died after writing its log item")

    aws.dynamodb.meta.events.register_first("before-call.dynamodb.UpdateItem", crash)
    with pytest.raises(RuntimeError):
        step(store, read, {"lost": True}, count=4, tag="crashed:")
    aws.dynamodb.meta.events.unregister("before-call.dynamodb.UpdateItem", crash)

    orphans = [i for i in raw_items(aws, f"RUN#{run.run_id}") if i["sk"]["S"].startswith("LOG#0000000001")]
    assert len(orphans) == 1
    assert [r.seq for r in store.list_logs(run.run_id)] == [0]
    assert new_store(aws).list_logs(run.run_id) == store.list_logs(run.run_id)

    redone = step(store, read, {"kept": True}, count=2, tag="redone:")
    again = step(store, redone, count=1, tag="next:")
    logs = new_store(aws).list_logs(run.run_id)
    assert [r.message for r in logs[1:]] == ["redone:record 1", "redone:record 2", "next:record 3"]
    assert again.state == {"kept": True}


def test_a_slow_loser_writing_after_the_winner_committed_changes_no_record(
    aws: AwsEnv, store: DynamoStore
) -> None:
    """Two execution environments run the same position; the slower one writes its log item last."""
    run, records = new_run()
    run = store.create_run(run, records)
    fast, slow = new_store(aws), new_store(aws)
    read_fast, read_slow = fast.get_run(run.run_id), slow.get_run(run.run_id)

    won = step(fast, read_fast, {"by": "fast"}, count=3, tag="fast:")
    with pytest.raises(StaleStepError):
        step(slow, read_slow, {"by": "slow"}, count=3, tag="slow:")

    same_first_seq = [
        i for i in raw_items(aws, f"RUN#{run.run_id}") if i["sk"]["S"].startswith("LOG#0000000001")
    ]
    assert len(same_first_seq) == 2
    for reader in (store, new_store(aws)):
        logs = reader.list_logs(run.run_id)
        assert [r.message for r in logs[1:]] == ["fast:record 1", "fast:record 2", "fast:record 3"]
        assert [r.seq for r in reader.list_logs(run.run_id, after=1, limit=1)] == [2]
    assert store.get_run(run.run_id) == won


@pytest.mark.parametrize("page_items", [1, 2, 5])
def test_list_logs_reads_page_after_page_past_orphans(
    aws: AwsEnv, store: DynamoStore, monkeypatch: pytest.MonkeyPatch, page_items: int
) -> None:
    run, records = new_run()
    run = store.create_run(run, records)
    loser = new_store(aws)
    for i in range(12):
        stale = loser.get_run(run.run_id)
        run = step(store, run, {"i": i}, count=1 + i % 3, tag="ok:")
        if i % 2 == 0:
            with pytest.raises(StaleStepError):
                step(loser, stale, count=2, tag="lost:")
    expected = store.list_logs(run.run_id)
    assert [r.seq for r in expected] == list(range(run.next_seq))
    assert not any(r.message.startswith("lost:") for r in expected)

    monkeypatch.setattr("engine.aws.dynamodb._PAGE_ITEMS", page_items)
    for after in (-1, 0, 3, 10, run.next_seq - 2):
        for limit in (1, 4, 100):
            got = store.list_logs(run.run_id, after=after, limit=limit)
            assert got == expected[after + 1 : after + 1 + limit], (after, limit)


# large state


def test_a_10_mb_state_keeps_the_run_item_small(aws: AwsEnv, store: DynamoStore) -> None:
    state = {
        "dataset": "d" * (4 * MB),
        "rows": [{"id": i, "value": "v" * 1000} for i in range(2000)],
        **{f"part{i:03d}": "p" * 12_000 for i in range(200)},
        "small": {"n": 1},
    }
    run, records = new_run(state=state)
    run = store.create_run(run, records)
    committed = step(store, run, {"more": "m" * (3 * MB), "part000": "changed"})

    (item,) = [i for i in raw_items(aws, f"RUN#{run.run_id}") if i["sk"]["S"] == "RUN"]
    assert item_size(item) < STATE_BUDGET + 4096
    expected = {**state, "more": "m" * (3 * MB), "part000": "changed"}
    assert committed.state == expected
    assert new_store(aws).get_run(run.run_id).state == expected


def test_an_unchanged_large_value_is_not_uploaded_again(
    aws: AwsEnv, store: DynamoStore, calls: Calls
) -> None:
    workflow = service(aws, store)
    workflow.create_graph(TOUCH_LOOP, graph_id="touch")
    calls.clear()
    calls.recording = True
    run = workflow.start_run("touch", {"big": "b" * (2 * MB), "i": 0})
    assert calls.names["s3"] == ["PutObject"]

    workflow.run_step(StepMessage(run_id=run.run_id, step=0))
    workflow.run_step(StepMessage(run_id=run.run_id, step=1))
    assert calls.names["s3"] == ["PutObject"]

    calls.clear()
    cold = service(aws, new_store(aws))
    result = cold.run_step(StepMessage(run_id=run.run_id, step=2))
    calls.recording = False

    assert result.disposition is StepDisposition.COMMITTED
    assert calls.names["s3"] == ["GetObject"]
    assert result.run.state == {"big": "b" * (2 * MB), "i": 3}


def test_without_a_blob_store_a_value_too_large_for_an_item_is_refused(aws: AwsEnv) -> None:
    store = new_store(aws, blobs=False)
    noise = base64.b64encode(random.Random(7).randbytes(450 * 1024)).decode()  # does not compress
    run, records = new_run(state={"big": noise})
    with pytest.raises(PayloadTooLargeError):
        run = store.create_run(run, records)

    run, records = new_run("run-2", state={"medium": "y" * (200 * 1024)})
    run = store.create_run(run, records)
    assert store.get_run("run-2").state == {"medium": "y" * (200 * 1024)}
    with pytest.raises(PayloadTooLargeError):
        step(store, run, {"more": noise})
    assert store.get_run("run-2") == run
    assert [r.seq for r in store.list_logs("run-2")] == [0]


def test_a_huge_log_record_is_refused(store: DynamoStore) -> None:
    run, records = new_run()
    run = store.create_run(run, records)
    huge = step_records(run, 1)[0].model_copy(update={"data": {"blob": "x" * (300 * 1024)}})
    with pytest.raises(PayloadTooLargeError):
        store.commit(run, changes_for(run, [huge]), [huge])
    assert store.get_run(run.run_id) == run


# idempotency keys


def test_an_expired_idempotency_key_is_free_again(aws: AwsEnv, store: DynamoStore) -> None:
    aws.dynamodb.put_item(
        TableName=aws.resources.table_name,
        Item={
            "pk": {"S": f"IDEM#{OWNER}#key-1"},
            "sk": {"S": "IDEM"},
            "run_id": {"S": "long-gone"},
            "expires_at": {"N": "1000"},
        },
    )
    assert store.find_run_by_idempotency_key(OWNER, "key-1") is None

    run, records = new_run("run-new", idempotency_key="key-1")
    assert unread(store.create_run(run, records)) == run
    found = store.find_run_by_idempotency_key(OWNER, "key-1")
    assert found is not None and found.run_id == "run-new"
