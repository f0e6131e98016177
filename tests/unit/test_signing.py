"""How clients pick their credentials, and what a presigned or token-carrying WebSocket URL looks like."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.credentials import Credentials

from local.signing import BearerToken, SigV4Signer, client_auth, region_of


def test_the_region_comes_from_an_execute_api_host() -> None:
    assert region_of("https://abc123.execute-api.eu-west-1.amazonaws.com/x") == "eu-west-1"
    assert region_of("http://127.0.0.1:8000") == "us-east-1"


def test_a_token_wins_then_the_local_stacks_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(client_auth("http://127.0.0.1:8000", token="t"), BearerToken)
    key = {"access_key": "AKIALOCAL1", "secret_key": "s", "arn": "arn:aws:iam::123456789012:user/developer"}
    local = client_auth("http://127.0.0.1:8000", local_credential=key)
    assert isinstance(local, SigV4Signer)
    assert local.credentials.access_key == "AKIALOCAL1"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    chained = client_auth("https://abc.execute-api.ap-south-1.amazonaws.com")
    assert isinstance(chained, SigV4Signer)
    assert (chained.credentials.access_key, chained.region) == ("AKIAENV", "ap-south-1")


def test_a_presigned_url_keeps_its_query_and_carries_the_signature() -> None:
    signer = SigV4Signer(Credentials("AKIAX", "secret", "session-token"))
    url = signer.websocket_url("wss://abc.execute-api.us-east-1.amazonaws.com/prod?run_id=r1")
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.path, query["run_id"]) == ("wss", "/prod", ["r1"])
    assert query["X-Amz-Credential"][0].startswith("AKIAX/")
    assert query["X-Amz-Credential"][0].endswith("/us-east-1/execute-api/aws4_request")
    assert query["X-Amz-Security-Token"] == ["session-token"]
    assert len(query["X-Amz-Signature"][0]) == 64


def test_a_token_goes_in_the_websocket_query() -> None:
    assert BearerToken("a.b.c").websocket_url("ws://h/ws") == "ws://h/ws?token=a.b.c"
    assert BearerToken("a.b.c").websocket_url("ws://h/ws?run_id=r") == "ws://h/ws?run_id=r&token=a.b.c"
