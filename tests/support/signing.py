"""SigV4 for the ``requests`` sessions that Schemathesis sends its cases through."""

from __future__ import annotations

from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from requests import PreparedRequest
from requests.auth import AuthBase

from local.signing import DEFAULT_REGION, SERVICE


class RequestsSigV4(AuthBase):
    """Signs a prepared ``requests`` request the way :mod:`local.signing` signs an httpx one."""

    def __init__(self, credentials: Credentials, region: str = DEFAULT_REGION) -> None:
        self.credentials = credentials
        self.region = region

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        body: Any = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        host = request.headers.get("Host") or (request.url or "").split("/")[2]
        signed = AWSRequest(method=request.method, url=request.url, headers={"host": host}, data=body)
        SigV4Auth(self.credentials, SERVICE, self.region).add_auth(signed)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in signed.headers:
                request.headers[name] = signed.headers[name]
        return request
