"""How the clients authenticate: SigV4-signed requests and presigned WebSocket URLs, or a bearer JWT.

* :class:`SigV4Signer`: each HTTP request is signed with botocore's ``SigV4Auth``
  (service ``execute-api``) through an ``httpx.Auth``; the WebSocket URL is
  presigned with ``SigV4QueryAuth``. The credentials are the local stack's key
  (its ``stack.json``) when talking to it, else botocore's usual chain
  (environment, ``~/.aws``, SSO, instance role...).
* :class:`BearerToken`: ``Authorization: Bearer <token>`` on HTTP, ``?token=``
  on the WebSocket URL (the authorizer reads either).
"""

from __future__ import annotations

import re
from collections.abc import Generator, Mapping
from typing import Protocol
from urllib.parse import urlencode, urlsplit

import httpx
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "execute-api"
DEFAULT_REGION = "us-east-1"
PRESIGN_SECONDS = 300
_EXECUTE_API_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")


class ClientAuth(Protocol):
    def http_auth(self) -> httpx.Auth: ...

    def websocket_url(self, url: str) -> str:
        """The URL to open the WebSocket with (opened at once: a presigned URL expires)."""


def region_of(url: str, default: str = DEFAULT_REGION) -> str:
    """The region of an ``execute-api`` URL (``https://ID.execute-api.REGION.amazonaws.com``), else ``default``."""
    match = _EXECUTE_API_HOST.search(urlsplit(url).hostname or "")
    return match.group(1) if match else default


class _SigV4HttpxAuth(httpx.Auth):
    requires_request_body = True

    def __init__(self, credentials: Credentials, region: str) -> None:
        self.credentials = credentials
        self.region = region

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        signed = AWSRequest(
            method=request.method,
            url=str(request.url),
            headers={"host": request.headers["host"]},
            data=request.content,
        )
        SigV4Auth(self.credentials, SERVICE, self.region).add_auth(signed)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in signed.headers:
                request.headers[name] = signed.headers[name]
        yield request


class SigV4Signer:
    """Signs with AWS credentials for ``region``."""

    def __init__(self, credentials: Credentials, region: str = DEFAULT_REGION) -> None:
        self.credentials = credentials
        self.region = region

    def http_auth(self) -> httpx.Auth:
        return _SigV4HttpxAuth(self.credentials, self.region)

    def websocket_url(self, url: str) -> str:
        request = AWSRequest(method="GET", url=url, headers={"host": urlsplit(url).netloc})
        SigV4QueryAuth(self.credentials, SERVICE, self.region, expires=PRESIGN_SECONDS).add_auth(request)
        return str(request.url)


class _BearerHttpxAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class BearerToken:
    """A JWT (``--token`` / ``WF_TOKEN``)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def http_auth(self) -> httpx.Auth:
        return _BearerHttpxAuth(self.token)

    def websocket_url(self, url: str) -> str:
        """``?token=``: a WebSocket handshake from a browser cannot carry headers, so the APIs read it there."""
        return f"{url}{'&' if urlsplit(url).query else '?'}{urlencode({'token': self.token})}"


def client_auth(
    http_url: str,
    *,
    token: str | None = None,
    local_credential: Mapping[str, str] | None = None,
    region: str | None = None,
) -> ClientAuth | None:
    """How to authenticate to ``http_url``: the token, else the local stack's key, else botocore's chain.

    ``None`` when there is nothing to authenticate with (requests then go unsigned).
    """
    if token:
        return BearerToken(token)
    if local_credential:
        credentials = Credentials(local_credential["access_key"], local_credential["secret_key"])
        return SigV4Signer(credentials, DEFAULT_REGION)
    import botocore.session

    found = botocore.session.get_session().get_credentials()
    if found is None:
        return None
    return SigV4Signer(found, region or region_of(http_url))
