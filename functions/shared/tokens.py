"""JWT validation, one implementation for the WebSocket authorizer and the local stack's JWT mode.

A token is accepted if it is signed (RS256/ES256) by a key of the issuer's JWKS,
its ``iss`` is the issuer, its ``aud`` (or, for Cognito access tokens, its
``client_id``) holds the audience, and it has not expired. The caller is
``"{iss}|{sub}"`` (:func:`functions.shared.identity.jwt_principal`), the same
principal the HTTP API's JWT authorizer yields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jwt

from functions.shared.identity import jwt_principal

ALGORITHMS = ["RS256", "ES256"]
LEEWAY_SECONDS = 30


class InvalidTokenError(Exception):
    """The token is missing, malformed, badly signed, expired, or for another issuer or audience."""


class JwtValidator:
    """Checks tokens of one issuer for one audience.

    Args:
        issuer: the expected ``iss``.
        audience: the expected ``aud`` (or Cognito ``client_id``).
        jwks_url: where the issuer's keys are; default ``{issuer}/.well-known/jwks.json``.
        jwks: the keys themselves (a JWKS document) instead of a URL.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        jwks_url: str | None = None,
        jwks: Mapping[str, Any] | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self._keys = jwt.PyJWKSet.from_dict(dict(jwks)) if jwks is not None else None
        self._client = (
            None
            if jwks is not None
            else jwt.PyJWKClient(jwks_url or f"{issuer.rstrip('/')}/.well-known/jwks.json", lifespan=3600)
        )

    def _key(self, token: str) -> Any:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._keys.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise InvalidTokenError(f"no key {kid!r} in the JWKS")

    def claims(self, token: str | None) -> dict[str, Any]:
        """The verified claims; :class:`InvalidTokenError` if the token does not pass."""
        if not token:
            raise InvalidTokenError("no token")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key(token),
                algorithms=ALGORITHMS,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "sub"], "verify_aud": False},
            )
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidTokenError(str(exc)) from None
        audience = claims.get("aud", claims.get("client_id"))
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise InvalidTokenError("the token is for another audience")
        return claims

    def principal(self, token: str | None) -> str:
        """The caller a valid token names; :class:`InvalidTokenError` otherwise."""
        found = jwt_principal(self.claims(token))
        if found is None:
            raise InvalidTokenError("the token names no subject")
        return found


def bearer_token(headers: Mapping[str, Any] | None, query: Mapping[str, Any] | None) -> str | None:
    """The token of a request: ``Authorization: Bearer <token>``, else the ``token`` query parameter.

    Browsers cannot set headers on a WebSocket, hence the query parameter.
    """
    for name, value in (headers or {}).items():
        if name.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    query_token = (query or {}).get("token")
    return query_token if isinstance(query_token, str) and query_token else None
