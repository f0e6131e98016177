"""Content-addressed blobs and the codec that moves large state values into them.

A run's state lives in its DynamoDB item as one JSON text per top-level key. A
value whose JSON is larger than the codec's ``inline_limit`` is stored as a blob
instead, and its entry becomes the reference ``{"$blob": "sha256/<hex>"}``. Blob
keys are the SHA-256 of the content, so a blob never changes once written: an
unchanged value maps to the same key and is not uploaded again, and contents can
be cached by key without invalidation.

A top-level value that is itself a one-key object named ``$blob`` or ``$value``
is wrapped as ``{"$value": ...}`` so that user data never reads as a reference.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any, Protocol

from engine.errors import NotFoundError

BLOB_REF = "$blob"
LITERAL = "$value"
_MARKERS = frozenset({BLOB_REF, LITERAL})

DEFAULT_INLINE_LIMIT = 16 * 1024
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024
_KNOWN_KEYS = 8192


def blob_key(data: bytes) -> str:
    """The content address of ``data``: ``sha256/<hex digest>``."""
    return "sha256/" + hashlib.sha256(data).hexdigest()


class BlobStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store ``data`` under :func:`blob_key` and return that key; storing it twice is harmless."""

    def get(self, key: str) -> bytes:
        """The content stored under ``key``; :class:`NotFoundError` if there is none."""


class InMemoryBlobStore:
    """Blobs in a dict, counting requests the way a remote store would bill them."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.puts = 0
        self.gets = 0

    def put(self, data: bytes) -> str:
        self.puts += 1
        key = blob_key(data)
        self.blobs[key] = bytes(data)
        return key

    def get(self, key: str) -> bytes:
        self.gets += 1
        try:
            return self.blobs[key]
        except KeyError:
            raise NotFoundError(f"no blob {key!r}", key=key) from None


class BlobCache:
    """Least-recently-used blob contents by key, holding at most ``max_bytes`` of content.

    It also remembers, up to a fixed count, which keys are known to be stored,
    even after their content is evicted: those need no upload.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._known: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._data.get(key)
            if data is not None:
                self._data.move_to_end(key)
            return data

    def add(self, key: str, data: bytes) -> None:
        with self._lock:
            self._mark_known(key)
            if len(data) > self.max_bytes or key in self._data:
                return
            self._data[key] = data
            self.size += len(data)
            while self.size > self.max_bytes:
                _, evicted = self._data.popitem(last=False)
                self.size -= len(evicted)

    def is_known(self, key: str) -> bool:
        with self._lock:
            return key in self._known

    def _mark_known(self, key: str) -> None:
        self._known[key] = None
        self._known.move_to_end(key)
        if len(self._known) > _KNOWN_KEYS:
            self._known.popitem(last=False)


class ValueCodec:
    """Turns one state value into the JSON text a store keeps, and back.

    Args:
        blobs: where values over ``inline_limit`` go; without one every value stays inline.
        inline_limit: the largest JSON text, in UTF-8 bytes, kept inline by :meth:`encode`.
        cache_bytes: how much blob content to keep in memory.
    """

    def __init__(
        self,
        blobs: BlobStore | None,
        *,
        inline_limit: int = DEFAULT_INLINE_LIMIT,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.blobs = blobs
        self.inline_limit = inline_limit
        self.cache = BlobCache(cache_bytes)

    def encode(self, value: Any) -> str:
        """The stored text of ``value``: inline JSON, or a blob reference if it is too large."""
        text, data = self._dump(value)
        if self.blobs is not None and len(data) > self.inline_limit:
            return self._offload(data)
        return text

    def offload(self, text: str) -> str:
        """Store ``text`` as a blob and return the reference text that stands for it."""
        return self._offload(text.encode())

    def dump(self, value: Any) -> tuple[str, bytes]:
        """The stored JSON text of ``value`` inline (wrapped if it could read as a reference) and its UTF-8."""
        return self._dump(value)

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` as a blob (unless known to be stored) and return its key."""
        if self.blobs is None:
            raise ValueError("this codec has no blob store")
        key = blob_key(data)
        if not self.cache.is_known(key):
            stored = self.blobs.put(data)
            if stored != key:
                raise ValueError(f"blob store returned key {stored!r} for content {key!r}")
        self.cache.add(key, data)
        return key

    def _dump(self, value: Any) -> tuple[str, bytes]:
        """The JSON text of ``value`` (wrapped if it could be mistaken for a reference) and its UTF-8."""
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _MARKERS:
            value = {LITERAL: value}
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        try:
            return text, text.encode()
        except UnicodeEncodeError:  # lone surrogates have no UTF-8 form: escape them
            text = json.dumps(value, separators=(",", ":"))
            return text, text.encode()

    def _offload(self, data: bytes) -> str:
        return reference(self.put_blob(data))

    def decode(self, text: str) -> Any:
        """The value a stored text holds, fetching a referenced blob (from the cache if it can)."""
        value = json.loads(text)
        if type(value) is dict and len(value) == 1:
            ref = value.get(BLOB_REF)
            if isinstance(ref, str):
                value = json.loads(self.fetch(ref))
            if type(value) is dict and len(value) == 1 and LITERAL in value:
                return value[LITERAL]
        return value

    def parse(self, text: str | bytes) -> Any:
        """The value of a text :meth:`dump` made (unwrapping a literal), without following references."""
        value = json.loads(text)
        if type(value) is dict and len(value) == 1 and LITERAL in value:
            return value[LITERAL]
        return value

    def fetch(self, key: str) -> bytes:
        data = self.cache.get(key)
        if data is None:
            if self.blobs is None:
                raise NotFoundError(f"blob {key!r} is referenced but no blob store is configured", key=key)
            data = self.blobs.get(key)
            self.cache.add(key, data)
        return data


def reference(key: str) -> str:
    """The stored text that stands for the blob ``key``."""
    return json.dumps({BLOB_REF: key}, separators=(",", ":"))


def size_of(text: str) -> int:
    """The UTF-8 size of ``text``, the measure DynamoDB bills and limits."""
    return len(text.encode())
