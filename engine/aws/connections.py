"""Which runs each WebSocket connection follows, in the DynamoDB table (``CONN#{connection_id}`` items)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from engine.aws.attributes import Item, n, s
from engine.aws.table import Table

CONNECTION_TTL_SECONDS = 3 * 3600


class ConnectionTable(Table):
    """The ``ConnectionStore`` port on the table."""

    def add_connection(self, connection_id: str, run_id: str) -> None:
        self._put(
            {
                "pk": s(f"CONN#{connection_id}"),
                "sk": s(f"RUN#{run_id}"),
                "expires_at": n(int(time.time()) + CONNECTION_TTL_SECONDS),
            }
        )

    def runs_of(self, connection_id: str) -> list[str]:
        return [item["sk"]["S"][len("RUN#") :] for item in self._connection_items(connection_id)]

    def remove_connection(self, connection_id: str) -> None:
        self._delete_all(
            {"pk": item["pk"], "sk": item["sk"]} for item in self._connection_items(connection_id)
        )

    def _connection_items(self, connection_id: str) -> Iterator[Item]:
        return self._query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": s(f"CONN#{connection_id}")},
            ProjectionExpression="pk, sk",
            ConsistentRead=True,
        )
