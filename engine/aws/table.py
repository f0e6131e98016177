"""The requests every part of the DynamoDB store makes: reads, puts, queries and batch deletes on one table."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from engine.aws.attributes import Item, is_too_large
from engine.errors import PayloadTooLargeError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH = 25
"""Requests in one ``BatchWriteItem``."""
BATCH_ATTEMPTS = 8


class Table:
    """One DynamoDB table and the low-level client that reaches it."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self.client = client
        self.table = table_name

    def _delete_all(self, keys: Iterable[Item]) -> None:
        """``BatchWriteItem`` deletes of ``keys``, retrying unprocessed ones."""
        batch: list[Item] = []
        for key in [*keys, None]:
            if key is not None:
                batch.append(key)
                if len(batch) < BATCH:
                    continue
            if not batch:
                break
            requests: Any = {self.table: [{"DeleteRequest": {"Key": k}} for k in batch]}
            for attempt in range(BATCH_ATTEMPTS):
                out = self.client.batch_write_item(RequestItems=requests)
                requests = out.get("UnprocessedItems")
                if not requests:
                    break
                time.sleep(min(1.0, 0.05 * 2**attempt))
            batch = []

    def _get(self, key: Item, attributes: tuple[str, ...] = ()) -> Item | None:
        """The item, read strongly consistent; only ``attributes`` if given."""
        params: dict[str, Any] = {"TableName": self.table, "Key": key, "ConsistentRead": True}
        if attributes:
            names = {f"#p{i}": a for i, a in enumerate(attributes)}
            params["ProjectionExpression"] = ", ".join(names)
            params["ExpressionAttributeNames"] = names
        item = self.client.get_item(**params).get("Item")
        return cast(Item, item) if item is not None else None

    def _put(self, item: Item) -> None:
        try:
            self.client.put_item(TableName=self.table, Item=item)
        except ClientError as exc:
            raise self._translated(exc) from exc

    def _query_pages(self, **params: Any) -> Iterator[list[Item]]:
        params["TableName"] = self.table
        while True:
            out = self.client.query(**params)
            yield cast(list[Item], out.get("Items", []))
            last = out.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

    def _query(self, **params: Any) -> Iterator[Item]:
        for page in self._query_pages(**params):
            yield from page

    @staticmethod
    def _translated(exc: ClientError) -> Exception:
        if is_too_large(exc):
            return PayloadTooLargeError(f"an item is larger than DynamoDB allows: {exc}")
        return exc
