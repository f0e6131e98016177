"""The BlobStore contract (memory and S3), and the value codec that offloads large state values."""

from __future__ import annotations

import hashlib
import json

import pytest

from engine.aws.s3 import S3BlobStore
from engine.blobs import BlobCache, BlobStore, InMemoryBlobStore, ValueCodec, blob_key
from engine.errors import NotFoundError
from tests.contract.conftest import Moto


@pytest.fixture(params=["memory", "s3"])
def blobs(request: pytest.FixtureRequest) -> BlobStore:
    if request.param == "memory":
        return InMemoryBlobStore()
    env: Moto = request.getfixturevalue("moto")
    return S3BlobStore(env.s3, env.resources.bucket)


def test_put_returns_the_content_address_and_get_returns_the_content(blobs: BlobStore) -> None:
    data = b'{"rows":[1,2,3]}' * 1000
    key = blobs.put(data)
    assert key == "sha256/" + hashlib.sha256(data).hexdigest() == blob_key(data)
    assert blobs.get(key) == data


def test_put_is_idempotent(blobs: BlobStore) -> None:
    assert blobs.put(b"same") == blobs.put(b"same")
    assert blobs.get(blob_key(b"same")) == b"same"
    assert blobs.put(b"") == blob_key(b"")
    assert blobs.get(blob_key(b"")) == b""


def test_get_unknown_key_is_not_found(blobs: BlobStore) -> None:
    with pytest.raises(NotFoundError):
        blobs.get(blob_key(b"never stored"))


def test_s3_objects_are_named_by_their_key(moto: Moto) -> None:
    store = S3BlobStore(moto.s3, moto.resources.bucket)
    key = store.put(b"payload")
    body = moto.s3.get_object(Bucket=moto.resources.bucket, Key=key)["Body"].read()
    assert body == b"payload"


# codec


def test_small_values_stay_inline_as_json() -> None:
    store = InMemoryBlobStore()
    codec = ValueCodec(store, inline_limit=100)
    text = codec.encode({"a": [1, 2.5, "ü"]})
    assert json.loads(text) == {"a": [1, 2.5, "ü"]}
    assert codec.decode(text) == {"a": [1, 2.5, "ü"]}
    assert store.puts == 0


def test_large_values_become_references_to_their_content() -> None:
    store = InMemoryBlobStore()
    codec = ValueCodec(store, inline_limit=100)
    value = ["v" * 50, "w" * 50]
    text = codec.encode(value)

    key = blob_key(json.dumps(value, separators=(",", ":")).encode())
    assert json.loads(text) == {"$blob": key}
    assert json.loads(store.blobs[key]) == value
    assert ValueCodec(store, inline_limit=100).decode(text) == value


def test_an_unchanged_large_value_is_not_uploaded_again() -> None:
    store = InMemoryBlobStore()
    codec = ValueCodec(store, inline_limit=10)
    first = codec.encode("x" * 1000)
    assert codec.encode("x" * 1000) == first
    assert store.puts == 1

    reader = ValueCodec(store, inline_limit=10)
    assert reader.decode(first) == "x" * 1000
    assert reader.encode("x" * 1000) == first
    assert store.puts == 1
    assert reader.encode("y" * 1000) != first
    assert store.puts == 2


def test_decoding_a_reference_reads_the_blob_once() -> None:
    store = InMemoryBlobStore()
    text = ValueCodec(store, inline_limit=10).encode("x" * 1000)
    codec = ValueCodec(store, inline_limit=10)
    for _ in range(3):
        assert codec.decode(text) == "x" * 1000
    assert store.gets == 1


def test_decoded_values_are_independent_copies() -> None:
    codec = ValueCodec(InMemoryBlobStore(), inline_limit=10)
    text = codec.encode({"rows": [1, 2, 3], "pad": "p" * 100})
    first = codec.decode(text)
    first["rows"].append(4)
    assert codec.decode(text)["rows"] == [1, 2, 3]


@pytest.mark.parametrize(
    "value",
    [
        {"$blob": "sha256/abc"},
        {"$value": 1},
        {"$value": {"$blob": "x"}},
        {"$blob": "a", "other": 1},
        "$blob",
    ],
)
@pytest.mark.parametrize("limit", [5, 10_000])
def test_user_values_that_look_like_references_round_trip(value: object, limit: int) -> None:
    codec = ValueCodec(InMemoryBlobStore(), inline_limit=limit)
    assert codec.decode(codec.encode(value)) == value


def test_without_a_blob_store_everything_stays_inline() -> None:
    codec = ValueCodec(None, inline_limit=10)
    text = codec.encode("x" * 1000)
    assert json.loads(text) == "x" * 1000
    assert codec.decode(text) == "x" * 1000


def test_lone_surrogates_are_escaped() -> None:
    codec = ValueCodec(None)
    text = codec.encode("bad \udc80 byte")
    text.encode()
    assert codec.decode(text) == "bad \udc80 byte"


def test_the_cache_evicts_the_least_recently_used_content_by_size() -> None:
    cache = BlobCache(max_bytes=10)
    cache.add("a", b"aaaa")
    cache.add("b", b"bbbb")
    assert cache.get("a") == b"aaaa"
    cache.add("c", b"cccc")
    assert cache.get("b") is None
    assert cache.get("a") == b"aaaa"
    assert cache.get("c") == b"cccc"
    assert cache.size == 8
    cache.add("huge", b"h" * 11)
    assert cache.get("huge") is None
    assert all(cache.is_known(k) for k in ("a", "b", "c", "huge"))
