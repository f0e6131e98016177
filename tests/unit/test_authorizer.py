"""The JWT checks (functions.shared.tokens) and the WebSocket REQUEST authorizer that uses them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from functions.authorizer import app as authorizer
from functions.shared.identity import find_principal
from functions.shared.tokens import InvalidTokenError, JwtValidator, bearer_token
from tests.support.events import load_event
from tests.support.jwt_keys import AUDIENCE, ISSUER, Issuer, serve_jwks

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123defg/prod/$connect"


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def configured(issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The authorizer's environment, with the JWKS served on loopback."""
    with serve_jwks(issuer.jwks()) as url:
        monkeypatch.setenv("JWT_ISSUER", ISSUER)
        monkeypatch.setenv("JWT_AUDIENCE", AUDIENCE)
        monkeypatch.setenv("JWKS_URL", url)
        authorizer.validator.cache_clear()
        yield
        authorizer.validator.cache_clear()


def connect_event(
    *, query: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A REQUEST authorizer event of the WebSocket $connect route."""
    event = load_event("ws_connect")
    event["type"] = "REQUEST"
    event["methodArn"] = METHOD_ARN
    event["queryStringParameters"] = {"run_id": "r1", **(query or {})}
    event["headers"] = {**event["headers"], **(headers or {})}
    return event


def effect(answer: dict[str, Any]) -> str:
    (statement,) = answer["policyDocument"]["Statement"]
    assert statement["Resource"] == METHOD_ARN
    return str(statement["Effect"])


@pytest.mark.usefixtures("configured")
def test_a_good_token_from_the_query_is_allowed_as_issuer_and_subject(issuer: Issuer) -> None:
    answer = authorizer.lambda_handler(connect_event(query={"token": issuer.token("alice")}), None)
    assert effect(answer) == "Allow"
    assert answer["principalId"] == f"{ISSUER}|alice"
    handler_event = {
        "requestContext": {"authorizer": {"principalId": answer["principalId"], **answer["context"]}}
    }
    assert find_principal(handler_event) == f"{ISSUER}|alice"


@pytest.mark.usefixtures("configured")
def test_a_good_token_in_the_authorization_header_is_allowed(issuer: Issuer) -> None:
    answer = authorizer.lambda_handler(
        connect_event(headers={"Authorization": f"Bearer {issuer.token('bob')}"}), None
    )
    assert (effect(answer), answer["principalId"]) == ("Allow", f"{ISSUER}|bob")


@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda i: i.token(expires_in=-3600), id="expired"),
        pytest.param(lambda i: i.token(aud="another-app"), id="wrong-audience"),
        pytest.param(lambda i: i.token(iss="https://elsewhere.test"), id="wrong-issuer"),
        pytest.param(lambda i: Issuer(kid=i.kid).token(), id="bad-signature"),
        pytest.param(lambda i: i.token()[:-4] + "AAAA", id="tampered"),
        pytest.param(lambda i: "not-a-jwt", id="garbage"),
        pytest.param(lambda i: "", id="empty"),
    ],
)
def test_bad_tokens_are_denied(issuer: Issuer, make: Any) -> None:
    answer = authorizer.lambda_handler(connect_event(query={"token": make(issuer)}), None)
    assert effect(answer) == "Deny"
    assert "context" not in answer


@pytest.mark.usefixtures("configured")
def test_no_token_is_denied() -> None:
    assert effect(authorizer.lambda_handler(connect_event(), None)) == "Deny"


def test_a_jwks_document_validates_like_the_url(issuer: Issuer) -> None:
    validator = JwtValidator(ISSUER, AUDIENCE, jwks=issuer.jwks())
    assert validator.principal(issuer.token("carol")) == f"{ISSUER}|carol"
    cognito_access_token = issuer.token("dave", aud=None, client_id=AUDIENCE)
    assert validator.principal(cognito_access_token) == f"{ISSUER}|dave"
    with pytest.raises(InvalidTokenError):
        validator.principal(Issuer().token())
    with pytest.raises(InvalidTokenError):
        validator.principal(issuer.token(sub=""))


def test_the_token_comes_from_the_bearer_header_before_the_query() -> None:
    assert bearer_token({"authorization": "Bearer abc"}, {"token": "xyz"}) == "abc"
    assert bearer_token({"Authorization": "Basic abc"}, {"token": "xyz"}) == "xyz"
    assert bearer_token({}, {}) is None
