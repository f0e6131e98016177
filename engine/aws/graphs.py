"""Graph versions and each owner's listing in the DynamoDB table (keys and requests: :mod:`engine.aws.dynamodb`)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from engine.aws.attributes import Item, integer, is_condition_failure, n, s, text
from engine.aws.table import Table
from engine.errors import ConflictError, GraphNotFoundError
from engine.graph import Graph
from engine.model import GraphRecord


def _graphs_pk(owner: str | None) -> str:
    return f"GRAPHS#{owner}" if owner is not None else "GRAPHS"


class GraphTable(Table):
    """The ``GraphStore`` port on the table."""

    def put_graph(self, record: GraphRecord) -> None:
        attrs = {
            "graph_id": s(record.graph_id),
            "version": n(record.version),
            "created_at": n(record.created_at),
            "definition": s(record.definition.model_dump_json()),
            **({"owner": s(record.owner)} if record.owner is not None else {}),
        }
        try:
            self.client.put_item(
                TableName=self.table,
                Item={"pk": s(f"GRAPH#{record.graph_id}"), "sk": s(f"V#{record.version:08d}"), **attrs},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise ConflictError(f"graph {record.graph_id} version {record.version} exists") from None
            raise self._translated(exc) from exc
        try:
            self.client.put_item(
                TableName=self.table,
                Item={"pk": s(_graphs_pk(record.owner)), "sk": s(f"G#{record.graph_id}"), **attrs},
                ConditionExpression="attribute_not_exists(pk) OR #version < :v",
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":v": n(record.version)},
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    def get_graph(self, graph_id: str, version: int | None = None) -> GraphRecord:
        pk = f"GRAPH#{graph_id}"
        if version is not None:
            item = self._get({"pk": s(pk), "sk": s(f"V#{version:08d}")})
            if item is None:
                raise GraphNotFoundError(f"graph {graph_id!r} has no version {version}", graph_id=graph_id)
            return self._graph(item)
        items = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :v)",
            ExpressionAttributeValues={":pk": s(pk), ":v": s("V#")},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        ).get("Items", [])
        if not items:
            raise GraphNotFoundError(f"no graph {graph_id!r}", graph_id=graph_id)
        return self._graph(items[0])

    def list_graphs(self, owner: str, limit: int = 100) -> list[GraphRecord]:
        items = self._query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": s(_graphs_pk(owner))},
            ConsistentRead=True,
        )
        records = [self._graph(item) for item in items]
        return sorted(records, key=lambda r: r.created_at, reverse=True)[:limit]

    def delete_graph(self, graph_id: str) -> int:
        versions = list(
            self._query(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :v)",
                ExpressionAttributeValues={":pk": s(f"GRAPH#{graph_id}"), ":v": s("V#")},
                ProjectionExpression="pk, sk, #owner",
                ExpressionAttributeNames={"#owner": "owner"},
                ConsistentRead=True,
            )
        )
        if not versions:
            raise GraphNotFoundError(f"no graph {graph_id!r}", graph_id=graph_id)
        keys = [{"pk": item["pk"], "sk": item["sk"]} for item in versions]
        listing = {"pk": s(_graphs_pk(text(versions[-1], "owner"))), "sk": s(f"G#{graph_id}")}
        # The listing entry first: a crash in between leaves versions that a repeated delete finds.
        self.client.delete_item(TableName=self.table, Key=listing)
        self._delete_all(keys)
        return len(keys)

    @staticmethod
    def _graph(item: Item) -> GraphRecord:
        return GraphRecord(
            graph_id=item["graph_id"]["S"],
            version=integer(item, "version"),
            definition=Graph.model_validate_json(item["definition"]["S"]),
            created_at=float(item["created_at"]["N"]),
            owner=text(item, "owner"),
        )
