"""Fixtures for the ``sam_local`` tests: the built functions in Docker, through SAM CLI, against moto.

These tests need Docker, the Lambda image and an x86_64 ``sam build``: ``make sam-local``
makes all three and runs them with ``GRAPHFLOW_SAM_LOCAL=1``. Without that variable they are
skipped (``make test`` runs them as skipped).

* moto (``local.moto_server``) listens on the Docker bridge's gateway address, the address
  of this machine that containers on the default bridge reach; ``local.resources`` creates
  the template's table, bucket and queues there.
* an ``--env-vars`` file points the functions at it: ``AWS_ENDPOINT_URL`` (declared empty
  in the template's Globals), the resource names, and ``WS_MANAGEMENT_ENDPOINT`` (moto
  accepts WebSocket frames too, so none is sent to the events' API Gateway domain).
* ``sam local start-lambda`` serves the functions once for the session; tests invoke them
  with boto3's Lambda client.

Configuration (environment, set by the Makefile): ``SAM_LOCAL_SAM`` (the ``sam`` executable),
``SAM_LOCAL_TEMPLATE`` (the built template), ``SAM_LOCAL_IMAGE`` (the ``--invoke-image``),
``SAM_LOCAL_HOST`` (where moto listens; default the bridge gateway from ``docker network
inspect bridge``).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from local.moto_server import MotoServer
from local.resources import Resources, create_resources

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ENABLED = os.environ.get("GRAPHFLOW_SAM_LOCAL") == "1"
SAM = os.environ.get("SAM_LOCAL_SAM", str(ROOT / ".venv-sam" / "bin" / "sam"))
TEMPLATE = os.environ.get("SAM_LOCAL_TEMPLATE", str(ROOT / ".aws-sam" / "build-x86_64" / "template.yaml"))
IMAGE = os.environ.get("SAM_LOCAL_IMAGE", "graphflow/lambda-python:3.12-x86_64")
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
START_TIMEOUT = 120.0
SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sam_local: runs the built functions in Docker through SAM CLI (make sam-local)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="needs Docker and the Lambda image: run with make sam-local")
    for item in items:
        if item.get_closest_marker("sam_local") is not None:
            item.add_marker(skip)


@dataclass(frozen=True)
class Moto:
    url: str
    resources: Resources

    def client(self, service: str) -> Any:
        return boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        ).client(service, endpoint_url=self.url)


def bridge_gateway() -> str:
    """The address of this machine on Docker's default bridge (e.g. 172.17.0.1).

    The bridge network's configured gateway, else (Docker 20.10 leaves it unset) the
    address of the bridge's interface.
    """
    configured = os.environ.get("SAM_LOCAL_HOST")
    if configured:
        return configured
    out = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", "{{json .}}"],
        check=True,
        capture_output=True,
        text=True,
    )
    network = json.loads(out.stdout)
    for config in (network.get("IPAM") or {}).get("Config") or []:
        if config.get("Gateway"):
            return str(config["Gateway"])
    interface = (network.get("Options") or {}).get("com.docker.network.bridge.name", "docker0")
    return _interface_address(interface)


def _interface_address(name: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", name[:15].encode()))
    return socket.inet_ntoa(packed[20:24])


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    """moto on the bridge address, with the template's resources."""
    server = MotoServer(host=bridge_gateway()).start()
    try:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        resources = create_resources(
            session.client("dynamodb", endpoint_url=server.url),
            session.client("sqs", endpoint_url=server.url),
            session.client("s3", endpoint_url=server.url),
            region=REGION,
        )
        yield Moto(server.url, resources)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def env_vars_file(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``--env-vars`` file: every function reaches moto's resources."""
    variables = {
        "AWS_ENDPOINT_URL": moto.url,
        "TABLE_NAME": moto.resources.table_name,
        "BLOB_BUCKET": moto.resources.bucket,
        "STEP_QUEUE_URL": moto.resources.queue_url,
        "WS_REPLAY_QUEUE_URL": moto.resources.replay_url,
        "WS_MANAGEMENT_ENDPOINT": moto.url,
        "POWERTOOLS_METRICS_NAMESPACE": "graphflow-sam-local",
    }
    path = tmp_path_factory.mktemp("sam-local") / "env.json"
    path.write_text(json.dumps({"Parameters": variables}, indent=2))
    return path


def sam_command(*args: str) -> list[str]:
    """A ``sam local`` command on the built template, the local image and the x86_64 architecture."""
    return [
        SAM,
        "local",
        *args,
        "--template",
        TEMPLATE,
        "--region",
        REGION,
        "--parameter-overrides",
        "Architecture=x86_64",
        "--invoke-image",
        IMAGE,
        "--skip-pull-image",
    ]


def sam_env() -> dict[str, str]:
    """SAM CLI's environment: fake credentials (it passes them to the containers), no telemetry."""
    env = {k: v for k, v in os.environ.items() if k != "AWS_PROFILE"}
    env.update(FAKE_CREDENTIALS)
    env["SAM_CLI_TELEMETRY"] = "0"
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def lambda_client(env_vars_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """boto3's Lambda client on ``sam local start-lambda`` (warm containers, reused across invokes)."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("sam-local-log") / "start-lambda.log"
    command = [
        *sam_command("start-lambda"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--env-vars",
        str(env_vars_file),
        "--warm-containers",
        "LAZY",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=sam_env(), cwd=ROOT)
    try:
        _wait_for_port(port, process, log_path)
        client = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        ).client(
            "lambda",
            endpoint_url=f"http://127.0.0.1:{port}",
            config=Config(read_timeout=120, retries={"max_attempts": 0}),
        )
        yield client
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sam local start-lambda exited:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"sam local start-lambda did not listen on {port}:\n{log_path.read_text()}")
