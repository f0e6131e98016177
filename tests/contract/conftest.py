"""The contract suite: every test runs against each adapter of the store ports.

``memory`` is :mod:`engine.memory`; ``dynamodb`` is :class:`engine.aws.dynamodb.DynamoStore`
on moto, with its large values in S3 (also on moto), on the table, bucket and
queues that ``local.resources.create_resources`` builds from ``template.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from engine.aws.dynamodb import DynamoStore
from engine.aws.s3 import S3BlobStore
from engine.memory import InMemoryConnectionStore, InMemoryGraphStore, InMemoryRunStore
from engine.ports import ConnectionStore, GraphStore, RunStore
from tests.support.moto_env import AwsEnv, moto_account

Moto = AwsEnv


@dataclass
class Stores:
    kind: str
    graphs: GraphStore
    runs: RunStore
    connections: ConnectionStore


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsEnv]:
    """A fresh moto account with the template's resources."""
    with moto_account(monkeypatch) as env:
        yield env


@pytest.fixture(params=["memory", "dynamodb"])
def stores(request: pytest.FixtureRequest) -> Stores:
    if request.param == "memory":
        return Stores("memory", InMemoryGraphStore(), InMemoryRunStore(), InMemoryConnectionStore())
    env: Moto = request.getfixturevalue("moto")
    store = DynamoStore(
        env.dynamodb, env.resources.table_name, blobs=S3BlobStore(env.s3, env.resources.bucket)
    )
    return Stores("dynamodb", store, store, store)


CAP = 3


@pytest.fixture(params=["memory", "dynamodb"])
def capped_runs(request: pytest.FixtureRequest) -> RunStore:
    """A run store of each kind that takes at most :data:`CAP` subscribers per run."""
    if request.param == "memory":
        return InMemoryRunStore(max_subscribers=CAP)
    env: Moto = request.getfixturevalue("moto")
    return DynamoStore(env.dynamodb, env.resources.table_name, max_subscribers=CAP)


@pytest.fixture
def graphs(stores: Stores) -> GraphStore:
    return stores.graphs


@pytest.fixture
def runs(stores: Stores) -> RunStore:
    return stores.runs


@pytest.fixture
def connections(stores: Stores) -> ConnectionStore:
    return stores.connections
