"""What SigV4 costs the local stack per request: signing (client) and verifying (gateway), in-process.

.venv/bin/python bench/sigv4.py [--n 2000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx
from botocore.credentials import Credentials

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local.auth import Caller, CredentialTable, SigV4Authenticator
from local.signing import SigV4Signer

URL = "http://127.0.0.1:8000/runs"
BODY = b'{"graph_id": "g", "initial_state": {"i": 0}}'


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    n = parser.parse_args().n
    table = CredentialTable({})
    key = table.add("bench")
    signer = SigV4Signer(Credentials(key.access_key, key.secret_key))
    verifier = SigV4Authenticator(table)

    started = time.perf_counter()
    for _ in range(n):
        request = next(signer.http_auth().auth_flow(httpx.Request("POST", URL, content=BODY)))
    signed = time.perf_counter()
    headers = dict(request.headers)
    for _ in range(n):
        assert isinstance(verifier.http("POST", URL, headers, BODY), Caller)
    verified = time.perf_counter()
    url = signer.websocket_url("ws://127.0.0.1:8000/ws?run_id=r1")
    for _ in range(n):
        assert isinstance(verifier.websocket(url, {"host": "127.0.0.1:8000"}), Caller)
    presigned = time.perf_counter()
    print(f"sign            {1e6 * (signed - started) / n:6.0f} us/request")
    print(f"verify header   {1e6 * (verified - signed) / n:6.0f} us/request")
    print(f"verify presign  {1e6 * (presigned - verified) / n:6.0f} us/connection")


if __name__ == "__main__":
    main()
