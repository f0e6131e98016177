"""The local gateway's authentication: SigV4 (header and presigned WebSocket URL), JWT, dev mode, CORS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.credentials import Credentials
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from functions.shared.identity import find_principal
from functions.shared.tokens import JwtValidator
from local.auth import (
    DEV_CALLER,
    Authenticator,
    CredentialTable,
    JwtAuthenticator,
    NoAuthenticator,
    SigV4Authenticator,
)
from local.gateway import DEFAULT_WS_ROUTES, EventLoopThread, Gateway, cors_configuration
from local.resources import load_template
from local.signing import BearerToken, SigV4Signer
from tests.integration.test_local_gateway import Handlers
from tests.support.jwt_keys import AUDIENCE, ISSUER, Issuer

ALICE = "arn:aws:iam::123456789012:user/alice"


class Recorder(Handlers):
    """Answers 200 with the principal the event carries; remembers every event."""

    def http(self, event: dict[str, Any], context: Any) -> Any:
        with self.lock:
            self.events.append(event)
        return {"statusCode": 200, "body": json.dumps({"principal": find_principal(event)})}

    def ws(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.events.append(event)
        return {"statusCode": 200}


@pytest.fixture
def table() -> CredentialTable:
    return CredentialTable({})


def start(handlers: Recorder, authenticator: Authenticator) -> Iterator[Gateway]:
    loop = EventLoopThread()
    gateway = Gateway(handlers.http, handlers.ws, routes=DEFAULT_WS_ROUTES, authenticator=authenticator)
    loop.run(gateway.start())
    yield gateway
    loop.run(gateway.stop())
    loop.close()


@pytest.fixture
def handlers() -> Recorder:
    return Recorder()


@pytest.fixture
def sigv4(handlers: Recorder, table: CredentialTable) -> Iterator[Gateway]:
    yield from start(handlers, SigV4Authenticator(table))


def signer_for(table: CredentialTable, name: str = "alice") -> SigV4Signer:
    credential = table.add(name)
    return SigV4Signer(Credentials(credential.access_key, credential.secret_key))


def test_a_signed_request_reaches_the_handler_with_its_caller(
    sigv4: Gateway, handlers: Recorder, table: CredentialTable
) -> None:
    auth = signer_for(table).http_auth()
    got = httpx.post(f"{sigv4.url}/graphs?graph_id=a%20b&x=1", json={"k": "v"}, auth=auth)
    assert got.status_code == 200, got.text
    assert got.json() == {"principal": ALICE}
    (event,) = handlers.events
    assert event["requestContext"]["authorizer"]["iam"]["userArn"] == ALICE
    assert httpx.get(f"{sigv4.url}/runs/r1/logs", params={"after": "-1"}, auth=auth).status_code == 200


def test_unsigned_and_wrongly_signed_requests_are_403_and_reach_no_handler(
    sigv4: Gateway, handlers: Recorder, table: CredentialTable
) -> None:
    good = signer_for(table)
    stranger = SigV4Signer(Credentials("AKIAUNKNOWN0000", "secret"))
    wrong_secret = SigV4Signer(Credentials(good.credentials.access_key, "not-the-secret"))
    wrong_region = SigV4Signer(good.credentials, region="eu-west-1")

    assert httpx.get(f"{sigv4.url}/graphs").status_code == 403
    for signer in (stranger, wrong_secret, wrong_region):
        assert httpx.get(f"{sigv4.url}/graphs", auth=signer.http_auth()).status_code == 403

    request = httpx.Request("POST", f"{sigv4.url}/graphs", json={"k": "v"})
    signed = next(good.http_auth().auth_flow(request))
    tampered = httpx.Request(
        "POST", f"{sigv4.url}/graphs", content=signed.content.replace(b'"v"', b'"w"'), headers=signed.headers
    )
    assert httpx.Client().send(tampered).status_code == 403
    other_path = httpx.Request("POST", f"{sigv4.url}/runs", content=signed.content, headers=signed.headers)
    assert httpx.Client().send(other_path).status_code == 403
    assert handlers.events == []


def test_a_presigned_websocket_url_connects_with_its_caller(
    sigv4: Gateway, handlers: Recorder, table: CredentialTable
) -> None:
    url = signer_for(table).websocket_url(f"{sigv4.ws_url}?run_id=r1")
    with connect(url) as ws:
        ws.send(json.dumps({"action": "subscribe", "run_id": "r1"}))
        ws.send(json.dumps({"action": "unsubscribe", "run_id": "r1"}))
    connect_event = handlers.of_route("$connect")[0]
    assert connect_event["queryStringParameters"]["run_id"] == "r1"
    for route in ("$connect", "subscribe"):
        (event,) = handlers.of_route(route)
        assert event["requestContext"]["identity"]["userArn"] == ALICE
        assert find_principal(event) == ALICE


def test_an_unsigned_or_wrongly_signed_websocket_is_refused(
    sigv4: Gateway, handlers: Recorder, table: CredentialTable
) -> None:
    good = signer_for(table)
    presigned = good.websocket_url(f"{sigv4.ws_url}?run_id=r1")
    urls = [
        sigv4.ws_url,
        f"{sigv4.ws_url}?run_id=r1",
        SigV4Signer(Credentials(good.credentials.access_key, "wrong")).websocket_url(sigv4.ws_url),
        presigned.replace("run_id=r1", "run_id=r2"),
    ]
    for url in urls:
        with pytest.raises(InvalidStatus) as refused:
            connect(url).__enter__()
        assert refused.value.response.status_code == 403
    assert handlers.events == []


def test_cors_preflight_is_answered_without_credentials(sigv4: Gateway, handlers: Recorder) -> None:
    preflight = httpx.options(
        f"{sigv4.url}/graphs",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,x-amz-date,content-type",
        },
    )
    assert preflight.status_code == 204
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
        "content-type",
    } <= allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert handlers.events == []
    refused = httpx.get(f"{sigv4.url}/graphs", headers={"Origin": "https://app.example"})
    assert refused.status_code == 403


def test_the_gateway_answers_preflights_from_the_templates_cors_configuration() -> None:
    cors = cors_configuration(load_template())
    assert cors["AllowOrigins"] == ["*"]
    assert "OPTIONS" in cors["AllowMethods"]


def test_jwt_mode_takes_bearer_tokens(handlers: Recorder) -> None:
    issuer = Issuer()
    validator = JwtValidator(ISSUER, AUDIENCE, jwks=issuer.jwks())
    for gateway in start(handlers, JwtAuthenticator(validator)):
        token = BearerToken(issuer.token("alice"))
        got = httpx.get(f"{gateway.url}/graphs", auth=token.http_auth())
        assert got.json() == {"principal": f"{ISSUER}|alice"}
        assert handlers.events[0]["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "alice"
        assert httpx.get(f"{gateway.url}/graphs").status_code == 401
        expired = BearerToken(issuer.token(expires_in=-3600)).http_auth()
        assert httpx.get(f"{gateway.url}/graphs", auth=expired).status_code == 401
        with connect(token.websocket_url(f"{gateway.ws_url}?run_id=r1")):
            pass
        assert find_principal(handlers.of_route("$connect")[0]) == f"{ISSUER}|alice"
        with pytest.raises(InvalidStatus) as refused:
            connect(gateway.ws_url).__enter__()
        assert refused.value.response.status_code == 401


def test_development_mode_has_one_fixed_caller(handlers: Recorder) -> None:
    for gateway in start(handlers, NoAuthenticator()):
        assert httpx.get(f"{gateway.url}/graphs").json() == {"principal": DEV_CALLER}


def test_temporary_credentials_sign_with_their_session_token(
    sigv4: Gateway, handlers: Recorder, table: CredentialTable
) -> None:
    key = table.add("alice")
    signer = SigV4Signer(Credentials(key.access_key, key.secret_key, "session-token"))
    assert httpx.get(f"{sigv4.url}/graphs", auth=signer.http_auth()).json() == {"principal": ALICE}
    with connect(signer.websocket_url(sigv4.ws_url)):
        pass
    assert find_principal(handlers.of_route("$connect")[0]) == ALICE
