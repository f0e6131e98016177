"""The WebSocket ``$connect`` REQUEST authorizer of ``AuthMode: jwt``.

Takes the token from ``Authorization: Bearer <token>`` or ``?token=<token>``
(browsers cannot set headers on a WebSocket) and validates it with
:class:`functions.shared.tokens.JwtValidator`. A valid token is allowed, with the
caller ``"{iss}|{sub}"`` as ``principalId`` (the WebSocket handler reads it from
``requestContext.authorizer``); anything else is denied (API Gateway answers 403).

Configuration (environment, :class:`functions.shared.environment.AuthSettings`, read
when the validator is first made): ``JWT_ISSUER``, ``JWT_AUDIENCE``, and
optionally ``JWKS_URL`` (default ``{issuer}/.well-known/jwks.json``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from functions.shared.environment import AuthSettings
from functions.shared.observability import logger
from functions.shared.tokens import InvalidTokenError, JwtValidator, bearer_token


@cache
def validator() -> JwtValidator:
    config = AuthSettings.from_env()
    return JwtValidator(config.jwt_issuer, config.jwt_audience, jwks_url=config.jwks_url)


def policy(principal: str, effect: str, resource: str) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }
    if effect == "Allow":
        answer["context"] = {"owner": principal}
    return answer


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    resource = str(event.get("methodArn", "*"))
    token = bearer_token(event.get("headers"), event.get("queryStringParameters"))
    try:
        principal = validator().principal(token)
    except InvalidTokenError as exc:
        logger.info("connection denied", extra={"reason": str(exc)})
        return policy("anonymous", "Deny", resource)
    return policy(principal, "Allow", resource)
