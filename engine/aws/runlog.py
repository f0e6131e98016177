"""A run's log in DynamoDB: one item per commit, and which of those items are committed.

A commit writes its records with one ``PutItem`` *before* the conditional update
of the run, so the step needs no transaction. Each commit attempt draws a random
``token``; its log item is ``pk=RUN#{run_id}``, ``sk=LOG#{first_seq:010d}#{token}``
and carries ``prev``, the token of the commit it follows (read from the run at the
position it commits from). A successful commit sets the run's ``log_token``.

Why the token. Two workers can execute the same position: a redelivered message
while the first worker is slow, or an inline run and its watchdog. Both write
records for the same ``first_seq``; only one commit succeeds, and the loser's
``PutItem`` may land *after* the winner committed. With one key per
``first_seq`` the loser would overwrite committed records. With the token both
items exist, and the reader tells them apart:

* every ``prev`` ever written names a committed commit, because a writer takes it
  from the run it read, and the run only ever holds committed tokens;
* so an item is committed iff its token is the run's ``log_token`` or the
  ``prev`` of some item. A commit's successor (winner or loser) sits at a higher
  ``first_seq`` below the run's ``next_seq``, so the reader finds it in the range
  it reads anyway.

Items of attempts that lost or crashed stay invisible and expire with their TTL.
A commit holds at most :data:`RECORDS_PER_ITEM` records per item (more are split
into several items with the same token), which bounds how far before ``after`` a
reader starts: the item holding record ``after + 1`` begins no earlier than
``after + 2 - RECORDS_PER_ITEM``.

A reader does not know how many records the items in its range hold (a step
commits three, a failure or a long step more), and a Query's ``Limit`` counts
items. :func:`page_items` sizes each Query of a page from the records per item
read so far, so a page reads about as many items as hold its records.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass

from engine.aws.attributes import Item, n, s
from engine.errors import PayloadTooLargeError
from engine.model import LogRecord

RECORDS_PER_ITEM = 32
TYPICAL_RECORDS_PER_ITEM = 3
"""What a step's commit writes (step started, succeeded, edge taken): the first guess of a log page."""
ITEM_BYTES = 256 * 1024
LOG_PREFIX = "LOG#"


def new_token() -> str:
    return os.urandom(6).hex()


def log_key(first_seq: int) -> str:
    """The sort key prefix of the items whose first record is ``first_seq``."""
    return f"{LOG_PREFIX}{first_seq:010d}"


def check_sequence(records: list[LogRecord], first_seq: int) -> None:
    """Raise ``ValueError`` unless ``records`` number ``first_seq, first_seq + 1, ...``."""
    for i, record in enumerate(records):
        if record.seq != first_seq + i:
            raise ValueError(f"log record {i} has seq {record.seq}, expected {first_seq + i}")


def log_items(
    run_pk: str, records: list[LogRecord], token: str, prev: str | None, expires_at: int
) -> list[Item]:
    """The items holding one commit's records, split to at most RECORDS_PER_ITEM and ITEM_BYTES each."""
    items: list[Item] = []
    chunk: list[str] = []
    chunk_bytes = 0
    first_seq = records[0].seq if records else 0

    def flush() -> None:
        item: Item = {
            "pk": s(run_pk),
            "sk": s(f"{log_key(first_seq)}#{token}"),
            "recs": {"L": [s(t) for t in chunk]},
            "expires_at": n(expires_at),
        }
        if prev is not None:
            item["prev"] = s(prev)
        items.append(item)

    for record in records:
        body = record.model_dump_json()
        size = len(body.encode())
        if size > ITEM_BYTES:
            raise PayloadTooLargeError(
                f"log record {record.seq} of run {record.run_id} is {size} bytes; the limit is {ITEM_BYTES}"
            )
        if chunk and (len(chunk) == RECORDS_PER_ITEM or chunk_bytes + size > ITEM_BYTES):
            flush()
            chunk, chunk_bytes, first_seq = [], 0, record.seq
        chunk.append(body)
        chunk_bytes += size
    if chunk:
        flush()
    return items


@dataclass(frozen=True)
class LogItem:
    first_seq: int
    token: str
    prev: str | None
    records: list[str]

    @classmethod
    def from_item(cls, item: Item) -> LogItem:
        _, first, token = item["sk"]["S"].split("#")
        prev = item.get("prev")
        return cls(int(first), token, prev["S"] if prev else None, [r["S"] for r in item["recs"]["L"]])


def committed_records(items: Iterable[LogItem], log_token: str | None, start: int, stop: int) -> list[str]:
    """The record texts with ``start <= seq < stop``, from committed items, without a gap.

    ``items`` come in sort-key order. The result stops early where a committed
    item cannot be recognised yet because its successor was not read.
    """
    items = list(items)
    verified = {item.prev for item in items if item.prev is not None}
    if log_token is not None:
        verified.add(log_token)
    out: list[str] = []
    expected = start
    for item in items:
        if item.token not in verified:
            continue
        for i, body in enumerate(item.records):
            seq = item.first_seq + i
            if seq < expected:
                continue
            if seq > expected or seq >= stop:
                return out
            out.append(body)
            expected += 1
    return out


def page_items(missing: int, items: list[LogItem], most: int, skipped: int = 0) -> int:
    """The ``Limit`` of the next Query for a page that still lacks ``missing`` records.

    As many items as hold ``missing`` records, plus ``skipped`` records that the
    range holds before the page's first record, at the mean records per item of
    ``items`` (those read so far; before any, :data:`TYPICAL_RECORDS_PER_ITEM`),
    plus one: the item after the last one needed, whose ``prev`` shows that one
    committed. At most ``most``. A guess too high costs a few items more; too
    low, another Query.
    """
    held = sum(len(item.records) for item in items)
    per_item = held / len(items) if held else TYPICAL_RECORDS_PER_ITEM
    return min(most, math.ceil((max(missing, 1) + skipped) / per_item) + 1)
