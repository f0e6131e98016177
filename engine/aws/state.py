"""A run's state in DynamoDB: a small manifest in the run item, each value where its size is cheapest.

The run item's ``state`` map holds, per top-level state key, one *entry* (a JSON text):

* the value itself, if its JSON is at most :data:`INLINE_VALUE_LIMIT` bytes and the
  inline entries stay within :data:`INLINE_BUDGET`;
* ``@i:{digest}:{size}``: the value is the item ``pk=RUN#{run_id}``,
  ``sk=VAL#{digest}`` (its JSON text of ``size`` bytes, as ``v``, or zlib-compressed
  as the binary ``z`` where that is smaller: DynamoDB bills the stored bytes),
  ``digest`` the first 128 bits of the text's SHA-256 in unpadded base64url;
* ``@s:{digest}:{size}``: the value is the S3 blob ``sha256/{hex}`` (content-addressed,
  :mod:`engine.blobs`), ``digest`` its SHA-256 in unpadded base64url, for values
  over the codec's ``inline_limit``;
* ``{"$blob": key}``: a blob written before manifests existed (size unknown).

No JSON text starts with ``@``, so a reference never reads as a value. So the run item holds a few hundred bytes plus the small values, whatever the
state's size, and DynamoDB (which bills an ``UpdateItem`` by the whole item)
bills a commit on that, not on the state.

Why a commit stays exactly once and a crash loses nothing. A commit writes the
values it changes *before* its conditional ``UpdateItem`` of the run (the one
that checks the position and log token, :mod:`engine.aws.runlog`). Value items
and blobs are content-addressed: a write never changes what a key holds (the
same key means the same bytes), so writing one can never alter a value a
committed manifest points to, whoever writes it and whenever. Only the
manifest names values, and only a successful conditional update changes the
manifest; exactly one writer per position passes the condition. Hence:

* a crash after writing values and before the commit leaves the committed
  manifest as it was, pointing at values that were all written before it was
  committed; the new items are orphans;
* of two workers at one position (a redelivered message, an inline run and its
  watchdog), the loser's values are orphans unless identical to the winner's,
  in which case they are the same item; the state readers see is the winner's;
* a reader follows a manifest it read strongly consistent to items written
  before that manifest was committed.

Expiry. A value item expires (``expires_at``) :data:`VALUE_TTL_FACTOR` ``* ttl``
after it is written (orphans go then); rewriting the same content only moves
that later. The run item's ``values_until`` is a time before which no item its
manifest names expires: a commit's new items expire later than it. A commit
that finds ``values_until`` less than ``ttl`` away rewrites every item the
manifest names (read, then put: once per ``ttl`` of a run's life) and moves
``values_until`` to ``now + 2 * ttl``. So a committed manifest's items live at
least ``ttl`` past the commit: past the run's own TTL (``ttl`` after it
finishes) for a finished run; an active run commits again long before (a step
message lives at most 14 days in SQS, less than ``ttl``'s default of 30 days).

Reads. A value item never changes, so it is first read eventually consistent
(half price); a key it does not return (possible only right after the write) is
read again strongly consistent. Texts of items read or written are cached by
digest, as blob contents are (:class:`engine.blobs.BlobCache`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

from engine.aws.attributes import Item, is_too_large, n, s
from engine.blobs import BLOB_REF, BlobCache, ValueCodec
from engine.errors import NotFoundError, PayloadTooLargeError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

INLINE_VALUE_LIMIT = 128
"""The largest JSON text of one value kept in the run item."""
INLINE_BUDGET = 512
"""The most inline value text a run item holds; past it, small values go to items too."""
VALUE_TTL_FACTOR = 2
VALUE_PREFIX = "VAL#"
MAX_VALUE_ITEM = 390 * 1024
"""The largest value (compressed, if it is) an item holds (DynamoDB's item limit is 400 KB with the key)."""
_BATCH_GET = 100
_KNOWN_ITEMS = 8192
_ATTEMPTS = 8
_INLINE, _ITEM, _BLOB, _OLD_BLOB = "inline", "i", "s", "old"


@dataclass(frozen=True)
class Entry:
    """One parsed manifest entry."""

    kind: str
    text: str
    size: int | None
    where: str | None = None


def parse_entry(text: str) -> Entry:
    """What an entry of the ``state`` map says about its value."""
    if text.startswith("@"):
        where, size = text[3:].split(":")
        if text[1] == _ITEM:
            return Entry(_ITEM, text, int(size), where)
        return Entry(_BLOB, text, int(size), "sha256/" + base64.urlsafe_b64decode(where + "=").hex())
    if text.startswith('{"$blob"'):
        value = json.loads(text)
        if type(value) is dict and len(value) == 1 and isinstance(value.get(BLOB_REF), str):
            return Entry(_OLD_BLOB, text, None, str(value[BLOB_REF]))
    return Entry(_INLINE, text, len(text.encode()))


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def item_entry(digest: str, size: int) -> str:
    return f"@{_ITEM}:{digest}:{size}"


def blob_entry(key: str, size: int) -> str:
    return f"@{_BLOB}:{_b64(bytes.fromhex(key.removeprefix('sha256/')))}:{size}"


def value_key(run_pk: str, digest: str) -> Item:
    return {"pk": s(run_pk), "sk": s(VALUE_PREFIX + digest)}


class StateValues:
    """Writes and reads a run's values (see the module docstring).

    Args:
        client: a boto3 low-level DynamoDB client.
        table: the table.
        codec: the blob codec (its blob store, inline limit and cache).
        ttl_seconds: the store's TTL; value items live :data:`VALUE_TTL_FACTOR` times that.
        cache_bytes: how much value item text to keep in memory.
    """

    def __init__(
        self, client: DynamoDBClient, table: str, codec: ValueCodec, ttl_seconds: int, cache_bytes: int
    ) -> None:
        self.client = client
        self.table = table
        self.codec = codec
        self.ttl_seconds = ttl_seconds
        self.cache = BlobCache(cache_bytes)
        self._expiry: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    # writing

    def place(
        self, run_pk: str, updates: dict[str, Any], unchanged: dict[str, str], now: int
    ) -> dict[str, str]:
        """Write the values of ``updates`` that do not stay inline; return their manifest entries.

        ``updates`` maps stored keys to values, ``unchanged`` the other entries
        of the manifest read. Small values stay inline while the inline entries
        fit :data:`INLINE_BUDGET`, smallest first.
        """
        dumped = {key: self.codec.dump(value) for key, value in updates.items()}
        inline = sum(len(e.encode()) for e in unchanged.values() if parse_entry(e).kind == _INLINE)
        entries: dict[str, str] = {}
        for key in sorted(dumped, key=lambda k: len(dumped[k][1])):
            text, data = dumped[key]
            if len(data) <= INLINE_VALUE_LIMIT and inline + len(data) <= INLINE_BUDGET:
                inline += len(data)
                entries[key] = text
            elif self.codec.blobs is not None and len(data) > self.codec.inline_limit:
                entries[key] = blob_entry(self.codec.put_blob(data), len(data))
            else:
                entries[key] = self.write_item(run_pk, data, now)
        return entries

    def move_out(
        self, run_pk: str, unchanged: dict[str, str], changed_bytes: int, now: int
    ) -> dict[str, str]:
        """New entries that move the largest inline values of ``unchanged`` to items while inline ones exceed the budget.

        Only run items written before manifests existed hold that much inline
        (values up to 16 KB); their next commits move it out, without reading a value.
        """
        inline = {k: e for k, e in unchanged.items() if parse_entry(e).kind == _INLINE}
        total = changed_bytes + sum(len(e.encode()) for e in inline.values())
        moved: dict[str, str] = {}
        for key in sorted(inline, key=lambda k: len(inline[k]), reverse=True):
            if total <= INLINE_BUDGET or len(inline[key].encode()) <= INLINE_VALUE_LIMIT:
                break
            data = inline[key].encode()
            moved[key] = self.write_item(run_pk, data, now)
            total -= len(data)
        return moved

    def write_item(self, run_pk: str, data: bytes, now: int) -> str:
        """Store ``data`` as a value item of the run (unless known to be stored recently); its entry."""
        digest = _b64(hashlib.sha256(data).digest()[:16])
        with self._lock:
            expires = self._expiry.get((run_pk, digest))
        if expires is None or expires - now < self.ttl_seconds:
            expires = now + VALUE_TTL_FACTOR * self.ttl_seconds
            packed = zlib.compress(data, 6)
            body: Item = {"z": {"B": packed}} if len(packed) < len(data) else {"v": s(data.decode())}
            if min(len(packed), len(data)) > MAX_VALUE_ITEM:
                raise PayloadTooLargeError(
                    f"a state value of {len(data)} bytes does not fit in a DynamoDB item"
                    + ("" if self.codec.blobs is not None else " (no blob store is configured)")
                )
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item={**value_key(run_pk, digest), **body, "expires_at": n(expires)},
                )
            except ClientError as exc:
                if is_too_large(exc):
                    raise PayloadTooLargeError(
                        f"a state value does not fit in a DynamoDB item: {exc}"
                    ) from exc
                raise
            with self._lock:
                self._expiry[(run_pk, digest)] = expires
                if len(self._expiry) > _KNOWN_ITEMS:
                    self._expiry.pop(next(iter(self._expiry)))
        self.cache.add(digest, data)
        return item_entry(digest, len(data))

    def renew(self, run_pk: str, entries: dict[str, str], values_until: int | None, now: int) -> int | None:
        """Rewrite the items ``entries`` name if ``values_until`` is less than ``ttl`` away; the new ``values_until``.

        ``None`` (nothing to write) if it is far enough.
        """
        if values_until is not None and values_until - now >= self.ttl_seconds:
            return None
        digests = [cast(str, e.where) for e in map(parse_entry, entries.values()) if e.kind == _ITEM]
        texts = self._item_texts(run_pk, digests) if digests else {}
        for digest in dict.fromkeys(digests):
            with self._lock:
                self._expiry.pop((run_pk, digest), None)
            self.write_item(run_pk, texts[digest], now)
        return now + VALUE_TTL_FACTOR * self.ttl_seconds

    # reading

    def load(self, run_pk: str, entries: dict[str, str]) -> dict[str, Any]:
        """The values of ``entries`` (stored key to entry text), fetching items and blobs as needed."""
        parsed = {key: parse_entry(text) for key, text in entries.items()}
        digests = [cast(str, e.where) for e in parsed.values() if e.kind == _ITEM]
        texts = self._item_texts(run_pk, digests) if digests else {}
        out: dict[str, Any] = {}
        for key, entry in parsed.items():
            if entry.kind in (_INLINE, _OLD_BLOB):
                out[key] = self.codec.decode(entry.text)
            elif entry.kind == _ITEM:
                out[key] = self.codec.parse(texts[cast(str, entry.where)])
            else:
                out[key] = self.codec.parse(self.codec.fetch(cast(str, entry.where)))
        return out

    def _item_texts(self, run_pk: str, digests: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        missing = []
        for digest in dict.fromkeys(digests):
            data = self.cache.get(digest)
            if data is None:
                missing.append(digest)
            else:
                found[digest] = data
        for consistent in (False, True):
            for i in range(0, len(missing), _BATCH_GET):
                found.update(self._batch_get(run_pk, missing[i : i + _BATCH_GET], consistent))
            missing = [d for d in missing if d not in found]
            if not missing:
                break
        if missing:
            raise NotFoundError(f"state value item {missing[0]} of {run_pk} is missing", key=missing[0])
        return found

    def _batch_get(self, run_pk: str, digests: list[str], consistent: bool) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        request: Any = {
            self.table: {
                "Keys": [value_key(run_pk, d) for d in digests],
                "ConsistentRead": consistent,
                "ProjectionExpression": "sk, v, z",
            }
        }
        for attempt in range(_ATTEMPTS):
            out = self.client.batch_get_item(RequestItems=request)
            for item in cast(list[Item], out.get("Responses", {}).get(self.table, [])):
                digest = item["sk"]["S"][len(VALUE_PREFIX) :]
                data = zlib.decompress(item["z"]["B"]) if "z" in item else item["v"]["S"].encode()
                found[digest] = data
                self.cache.add(digest, data)
            request = out.get("UnprocessedKeys")
            if not request:
                break
            time.sleep(min(1.0, 0.05 * 2**attempt))
        return found
