"""How the local gateway authenticates callers, as the deployed APIs do.

* :class:`SigV4Authenticator` (the default): AWS SigV4, the ``Authorization``
  header of HTTP requests and the presigned query string (``X-Amz-*``) of the
  WebSocket URL. The signature is recomputed with botocore's ``SigV4Auth`` /
  ``SigV4QueryAuth`` (region ``us-east-1``, service ``execute-api``) over the
  same canonical request, with the secret key of the access key the request
  names, from a :class:`CredentialTable`. The caller is the ARN the table gives
  the key: ``requestContext.authorizer.iam.userArn`` (HTTP) and
  ``requestContext.identity.userArn`` (WebSocket), as API Gateway fills them.
* :class:`JwtAuthenticator`: ``Authorization: Bearer <token>`` (or ``?token=`` on
  the WebSocket), validated by :class:`functions.shared.tokens.JwtValidator`,
  the authorizer's code. ``requestContext.authorizer.jwt.claims`` (HTTP) and
  ``requestContext.authorizer.principalId`` (WebSocket).
* :class:`NoAuthenticator`: development mode, every request comes from one fixed caller.

A request that does not pass gets API Gateway's answer: 403 ``Forbidden`` (IAM)
or 401 ``Unauthorized`` (JWT). CORS preflights are the gateway's business
(:mod:`local.gateway`), never authenticated.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from functions.shared.tokens import InvalidTokenError, JwtValidator, bearer_token

REGION = "us-east-1"
SERVICE = "execute-api"
ACCOUNT_ID = "123456789012"
CLOCK_SKEW_SECONDS = 15 * 60
MAX_PRESIGN_SECONDS = 7 * 86_400
DEV_CALLER = f"arn:aws:iam::{ACCOUNT_ID}:user/developer"
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),"
    r"\s*Signature=(?P<signature>[0-9a-f]+)$"
)
_TIMESTAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Rejection:
    status: int
    message: str


@dataclass(frozen=True)
class Caller:
    """Who sent a request, as the parts of ``requestContext`` API Gateway fills in."""

    principal: str
    http_context: dict[str, Any]
    ws_context: dict[str, Any]


class Authenticator(Protocol):
    def http(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Caller | Rejection: ...

    def websocket(self, url: str, headers: Mapping[str, str]) -> Caller | Rejection: ...


@dataclass(frozen=True)
class LocalCredential:
    access_key: str
    secret_key: str
    arn: str

    def botocore(self) -> Credentials:
        return Credentials(self.access_key, self.secret_key)


class CredentialTable:
    """Access keys the local stack accepts, in ``.local-stack/credentials.json``:
    ``{"<access key>": {"secret_key": ..., "arn": ...}}``.
    """

    def __init__(self, credentials: Mapping[str, LocalCredential]) -> None:
        self.credentials = dict(credentials)

    @classmethod
    def load(cls, path: Path) -> CredentialTable:
        raw = json.loads(path.read_text()) if path.exists() else {}
        return cls(
            {
                key: LocalCredential(key, v["secret_key"], v["arn"])
                for key, v in raw.items()
                if isinstance(v, dict)
            }
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {c.access_key: {"secret_key": c.secret_key, "arn": c.arn} for c in self.credentials.values()}
        path.write_text(json.dumps(data, indent=2) + "\n")
        path.chmod(0o600)

    def add(self, name: str) -> LocalCredential:
        """A new key for IAM user ``name`` (``arn:aws:iam::123456789012:user/<name>``)."""
        credential = LocalCredential(
            "AKIALOCAL" + secrets.token_hex(6).upper(),
            secrets.token_urlsafe(30),
            f"arn:aws:iam::{ACCOUNT_ID}:user/{name}",
        )
        self.credentials[credential.access_key] = credential
        return credential

    def first_of(self, name: str) -> LocalCredential | None:
        arn = f"arn:aws:iam::{ACCOUNT_ID}:user/{name}"
        return next((c for c in self.credentials.values() if c.arn == arn), None)

    def get(self, access_key: str) -> LocalCredential | None:
        return self.credentials.get(access_key)


def _iam_caller(credential: LocalCredential) -> Caller:
    user_id = "AIDA" + credential.access_key[-12:]
    return Caller(
        principal=credential.arn,
        http_context={
            "authorizer": {
                "iam": {
                    "accessKey": credential.access_key,
                    "accountId": ACCOUNT_ID,
                    "callerId": user_id,
                    "cognitoIdentity": None,
                    "principalOrgId": None,
                    "userArn": credential.arn,
                    "userId": user_id,
                }
            }
        },
        ws_context={
            "identity": {
                "accountId": ACCOUNT_ID,
                "accessKey": credential.access_key,
                "caller": user_id,
                "user": user_id,
                "userArn": credential.arn,
            }
        },
    )


def _parse_time(value: str) -> float | None:
    try:
        return datetime.strptime(value, _TIMESTAMP).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


class SigV4Authenticator:
    """AWS SigV4 against a :class:`CredentialTable` (see the module docstring)."""

    def __init__(self, table: CredentialTable, *, region: str = REGION, clock: Any = time.time) -> None:
        self.table = table
        self.region = region
        self.clock = clock

    def _scope(self, credential: str) -> tuple[LocalCredential, str] | Rejection:
        parts = credential.split("/")
        if len(parts) != 5 or parts[2:] != [self.region, SERVICE, "aws4_request"]:
            return Rejection(403, "Forbidden: the credential scope is not this API's")
        found = self.table.get(parts[0])
        if found is None:
            return Rejection(403, "Forbidden: the access key is not known to the local stack")
        return found, parts[1]

    def http(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Caller | Rejection:
        lower = {k.lower(): v for k, v in headers.items()}
        match = _AUTHORIZATION.match(lower.get("authorization", "").strip())
        if match is None:
            return Rejection(403, "Forbidden: the request is not signed (AWS SigV4)")
        scope = self._scope(match["credential"])
        if isinstance(scope, Rejection):
            return scope
        credential, day = scope
        stamp = lower.get("x-amz-date", "")
        signed_at = _parse_time(stamp)
        if signed_at is None or not stamp.startswith(day):
            return Rejection(403, "Forbidden: X-Amz-Date is missing or does not match the credential")
        if abs(self.clock() - signed_at) > CLOCK_SKEW_SECONDS:
            return Rejection(403, "Forbidden: the signature has expired")
        names = match["signed"].split(";")
        if "host" not in names or any(n not in lower for n in names):
            return Rejection(403, "Forbidden: a signed header is missing")
        claimed = lower.get("x-amz-content-sha256")
        if claimed not in (None, "UNSIGNED-PAYLOAD") and claimed != hashlib.sha256(body).hexdigest():
            return Rejection(403, "Forbidden: X-Amz-Content-Sha256 does not match the body")
        request = AWSRequest(method=method, url=url, headers={n: lower[n] for n in names}, data=body)
        request.context["timestamp"] = stamp
        signer = SigV4Auth(credential.botocore(), SERVICE, self.region)
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if not hmac.compare_digest(expected, match["signature"]):
            return Rejection(403, "Forbidden: the signature does not match")
        return _iam_caller(credential)

    def websocket(self, url: str, headers: Mapping[str, str]) -> Caller | Rejection:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        params = {k: v for k, v in query if k.startswith("X-Amz-")}
        if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or "X-Amz-Signature" not in params:
            return Rejection(403, "Forbidden: the URL is not presigned (AWS SigV4)")
        scope = self._scope(params.get("X-Amz-Credential", ""))
        if isinstance(scope, Rejection):
            return scope
        credential, day = scope
        stamp = params.get("X-Amz-Date", "")
        signed_at = _parse_time(stamp)
        try:
            expires = int(params.get("X-Amz-Expires", ""))
        except ValueError:
            expires = -1
        if signed_at is None or not stamp.startswith(day) or not 0 < expires <= MAX_PRESIGN_SECONDS:
            return Rejection(403, "Forbidden: X-Amz-Date or X-Amz-Expires is missing or wrong")
        if self.clock() > signed_at + expires or signed_at - self.clock() > CLOCK_SKEW_SECONDS:
            return Rejection(403, "Forbidden: the presigned URL has expired")
        lower = {k.lower(): v for k, v in headers.items()}
        names = params.get("X-Amz-SignedHeaders", "").split(";")
        if "host" not in names or any(n not in lower for n in names):
            return Rejection(403, "Forbidden: a signed header is missing")
        rest = urlencode([(k, v) for k, v in query if not k.startswith("X-Amz-")])
        request = AWSRequest(
            method="GET",
            url=urlunsplit((parts.scheme, parts.netloc, parts.path, rest, "")),
            headers={n: lower[n] for n in names},
        )
        request.context["timestamp"] = stamp
        token = params.get("X-Amz-Security-Token")
        credentials = Credentials(credential.access_key, credential.secret_key, token)
        signer = SigV4QueryAuth(credentials, SERVICE, self.region, expires=expires)
        signer._modify_request_before_signing(request)  # type: ignore[attr-defined]
        expected = signer.signature(
            signer.string_to_sign(request, signer.canonical_request(request)), request
        )
        if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
            return Rejection(403, "Forbidden: the signature does not match")
        return _iam_caller(credential)


class JwtAuthenticator:
    """Bearer JWTs, checked by the WebSocket authorizer's :class:`JwtValidator`."""

    def __init__(self, validator: JwtValidator) -> None:
        self.validator = validator

    def _caller(self, token: str | None) -> Caller | Rejection:
        try:
            claims = self.validator.claims(token)
            principal = self.validator.principal(token)
        except InvalidTokenError:
            return Rejection(401, "Unauthorized")
        return Caller(
            principal=principal,
            http_context={"authorizer": {"jwt": {"claims": claims, "scopes": None}}},
            ws_context={"authorizer": {"principalId": principal, "owner": principal}},
        )

    def http(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Caller | Rejection:
        lower = {k.lower(): v for k, v in headers.items()}
        return self._caller(bearer_token({"authorization": lower.get("authorization", "")}, None))

    def websocket(self, url: str, headers: Mapping[str, str]) -> Caller | Rejection:
        query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        return self._caller(bearer_token(headers, query))


class NoAuthenticator:
    """Development mode: no credentials are checked; every request comes from ``principal``."""

    def __init__(self, principal: str = DEV_CALLER) -> None:
        self.principal = principal
        self._caller = _iam_caller(LocalCredential("AKIALOCALDEVMODE", "", principal))

    def http(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> Caller | Rejection:
        return self._caller

    def websocket(self, url: str, headers: Mapping[str, str]) -> Caller | Rejection:
        return self._caller
