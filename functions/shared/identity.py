"""The caller of a request, read from what API Gateway put in the event after authenticating it.

One principal string per caller, whichever API and authorizer:

* HTTP API (payload 2.0), IAM: ``requestContext.authorizer.iam.userArn``;
* HTTP API, JWT authorizer: ``"{iss}|{sub}"`` from ``requestContext.authorizer.jwt.claims``;
* WebSocket API, IAM: ``requestContext.identity.userArn``;
* WebSocket API, REQUEST authorizer (``functions.authorizer``): its ``principalId``,
  the same ``"{iss}|{sub}"``.

A request without one is :class:`UnauthenticatedError` (401): the deployed APIs
never let one through, so it means the API is configured without authentication.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.errors import UnauthenticatedError


def jwt_principal(claims: Mapping[str, Any]) -> str | None:
    """``"{iss}|{sub}"``: a subject is unique only within its issuer."""
    issuer, subject = claims.get("iss"), claims.get("sub")
    if isinstance(issuer, str) and issuer and isinstance(subject, str) and subject:
        return f"{issuer}|{subject}"
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def find_principal(event: Mapping[str, Any]) -> str | None:
    """The caller's principal, or ``None`` if the event carries none."""
    context = event.get("requestContext")
    if not isinstance(context, Mapping):
        return None
    authorizer = context.get("authorizer")
    if isinstance(authorizer, Mapping):
        iam = authorizer.get("iam")
        if isinstance(iam, Mapping) and (arn := _text(iam.get("userArn"))):
            return arn
        jwt = authorizer.get("jwt")
        claims = jwt.get("claims") if isinstance(jwt, Mapping) else None
        if isinstance(claims, Mapping) and (principal := jwt_principal(claims)):
            return principal
        if principal := _text(authorizer.get("principalId")):
            return principal
    identity = context.get("identity")
    if isinstance(identity, Mapping):
        return _text(identity.get("userArn"))
    return None


def principal(event: Mapping[str, Any]) -> str:
    """The caller's principal; :class:`UnauthenticatedError` if the event carries none."""
    found = find_principal(event)
    if found is None:
        raise UnauthenticatedError("the request carries no authenticated caller")
    return found
