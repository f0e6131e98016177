"""moto in server mode, in its own process, for DynamoDB, SQS and S3.

:class:`MotoServer` starts ``python -m local.moto_server`` and waits until it
answers. That process serves moto's WSGI application on ``127.0.0.1`` (or the
address given: ``make sam-local`` uses the Docker bridge's, which containers reach) with
changes that make it behave like the real services under concurrent clients:

* Requests run one at a time. moto's backends take no locks: two threads
  could both pass a DynamoDB ``ConditionExpression`` before either writes, or
  both receive the same SQS message. Serialising costs little, since moto's
  work is Python under one GIL anyway; reading and writing the sockets still
  overlaps.
* SQS long polling (``WaitTimeSeconds`` > 0) is done here rather than inside
  moto, which would hold the lock for the whole wait (and spins while the only
  visible messages belong to FIFO groups that are in flight). A long poll
  retries a short receive whenever another SQS request may have changed a
  queue, and at least every :data:`RECHECK_SECONDS` so that messages whose
  visibility timeout ends are seen.
* A receive no longer recounts the whole queue for each message it returns
  (:func:`_speed_up_sqs_receive`), which made it quadratic in the queue length.
* ``POST /_local/snapshot`` and ``POST /_local/restore`` with ``{"path": ...}``
  save the backends' data to a file and load it back (:mod:`local.snapshot`),
  between requests. A snapshot is written only when the data changed since the
  last one this process wrote.

The child exits when its parent dies, and ignores SIGINT so that Ctrl-C in a
terminal leaves its shutdown to the parent.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

ROOT = Path(__file__).resolve().parent.parent
RECHECK_SECONDS = 0.25
_SQS_TARGET = "AmazonSQS."
_RECEIVE = "ReceiveMessage"
_WAKING_ACTIONS = ("SendMessage", "DeleteMessage", "ChangeMessageVisibility", "PurgeQueue")
_SNAPSHOT_PATH = "/_local/snapshot"
_LOCAL_PATHS = (_SNAPSHOT_PATH, "/_local/restore")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class SqsRequest:
    """What the middleware needs to know of an SQS request."""

    action: str
    queue: str
    wait: float = 0.0
    short_body: bytes | None = None


class SerializedApp:
    """WSGI middleware: one request at a time through ``app``, SQS long polls done as repeated short ones.

    A long poll sleeps on its queue's condition. A request that can make
    messages receivable (a send; a delete, which frees a FIFO message group; a
    visibility change) wakes one sleeper of that queue, and a sleeper that
    received messages wakes the next, since more may be waiting.
    """

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.lock = threading.Lock()
        self._queues: dict[str, threading.Condition] = {}
        self._saved: dict[str, Any] | None = None

    def _condition(self, queue: str) -> threading.Condition:
        condition = self._queues.get(queue)
        if condition is None:
            condition = self._queues[queue] = threading.Condition(self.lock)
        return condition

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = _read_body(environ)
        if environ.get("PATH_INFO", "") in _LOCAL_PATHS and environ.get("REQUEST_METHOD") == "POST":
            return self._local(environ["PATH_INFO"], body, start_response)
        sqs = _sqs_request(environ, body)
        if sqs is not None and sqs.short_body is not None and sqs.wait > 0:
            return self._long_poll(environ, sqs, sqs.short_body, start_response)
        with self.lock:
            status, headers, payload = self._call(environ, body)
            if sqs is not None and sqs.action.startswith(_WAKING_ACTIONS):
                self._condition(sqs.queue).notify()
        start_response(status, headers)
        return [payload]

    def _local(self, path: str, body: bytes, start_response: StartResponse) -> Iterable[bytes]:
        """Save the backends to, or load them from, the file named in the request's ``{"path": ...}``."""
        from local import snapshot

        try:
            target = Path(json.loads(body)["path"])
            with self.lock:
                if path == _SNAPSHOT_PATH:
                    document = snapshot.dump()
                    content = {k: v for k, v in document.items() if k != "saved_at"}
                    written = content != self._saved or not target.exists()
                    if written:
                        snapshot.write(document, target)
                        self._saved = content
                    answer: dict[str, Any] = {"written": written}
                else:
                    saved = snapshot.read(target)
                    answer = snapshot.load(saved) if saved is not None else {}
                    for queue in self._queues.values():
                        queue.notify_all()
        except Exception as exc:
            start_response("500 Internal Server Error", [("Content-Type", "application/json")])
            return [json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(answer).encode()]

    def _call(self, environ: dict[str, Any], body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        environ = dict(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        captured: list[Any] = []

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            captured[:] = [status, headers]
            return lambda _data: None

        result = self.app(environ, capture)
        try:
            payload = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return captured[0], captured[1], payload

    def _long_poll(
        self, environ: dict[str, Any], sqs: SqsRequest, body: bytes, start_response: StartResponse
    ) -> Iterable[bytes]:
        deadline = time.monotonic() + sqs.wait
        with self.lock:
            condition = self._condition(sqs.queue)
            while True:
                status, headers, payload = self._call(environ, body)
                if _has_messages(payload):
                    condition.notify()
                    break
                remaining = deadline - time.monotonic()
                if not status.startswith("200") or remaining <= 0:
                    break
                condition.wait(min(remaining, RECHECK_SECONDS))
        start_response(status, headers)
        return [payload]


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    if not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
        return bytes(stream.read())
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return bytes(stream.read(length)) if length > 0 else b""


def _queue_name(url: Any) -> str:
    return str(url or "").rstrip("/").rsplit("/", 1)[-1]


def _sqs_request(environ: dict[str, Any], body: bytes) -> SqsRequest | None:
    """The SQS request's action and queue (``None`` if not SQS); for a receive, its wait and its body without it."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target.startswith(_SQS_TARGET):
        action = target[len(_SQS_TARGET) :]
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return None
        if not isinstance(request, dict):
            return None
        queue = _queue_name(request.get("QueueUrl"))
        if action != _RECEIVE:
            return SqsRequest(action, queue)
        wait = float(request.pop("WaitTimeSeconds", 0) or 0)
        request["WaitTimeSeconds"] = 0
        return SqsRequest(action, queue, wait, json.dumps(request).encode())
    if b"Action=" not in body or "x-www-form-urlencoded" not in environ.get("CONTENT_TYPE", ""):
        return None
    form = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    fields = dict(form)
    action = fields.get("Action")
    if action is None or "QueueUrl" not in fields:
        return None
    queue = _queue_name(fields["QueueUrl"])
    if action != _RECEIVE:
        return SqsRequest(action, queue)
    wait = float(fields.get("WaitTimeSeconds") or 0)
    rest = [(k, v) for k, v in form if k != "WaitTimeSeconds"] + [("WaitTimeSeconds", "0")]
    return SqsRequest(action, queue, wait, urlencode(rest).encode())


def _has_messages(payload: bytes) -> bool:
    if payload.lstrip().startswith(b"{"):
        try:
            return bool(json.loads(payload).get("Messages"))
        except ValueError:
            return False
    return b"<Message>" in payload


def serve(port: int, parent_pid: int | None, host: str = "127.0.0.1") -> None:
    """Serve moto on ``host:port`` (0: any free port) and print ``{"port": N}`` once listening."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    _speed_up_sqs_receive()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(host, port, SerializedApp(app), threaded=True, request_handler=MotoRequestHandler)
    os.environ["MOTO_PORT"] = str(server.port)
    if parent_pid is not None:
        threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    print(json.dumps({"port": server.port}), flush=True)
    server.serve_forever()


def _speed_up_sqs_receive() -> None:
    """Make moto's per-message retention check read one attribute instead of computing them all.

    moto 5 calls ``get_queue_attributes`` for each message it hands out, which
    counts the whole queue each time: a receive costs O(batch x queue length).
    The replacement computes the same answer from the queue's retention period.
    """
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    if not hasattr(SQSBackend, "is_message_valid_based_on_retention_period"):
        return

    def is_valid(self: Any, queue_name: str, message: Any) -> bool:
        period = getattr(self.get_queue(queue_name), "message_retention_period", None)
        if period is None:
            return True
        return bool(int(period) + message.sent_timestamp / 1000 > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = is_valid  # type: ignore[method-assign]


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(0)


class MotoServer:
    """A moto server subprocess on ``127.0.0.1`` (or ``host``).

    Args:
        port: the port to listen on; 0 picks a free one (see :attr:`port` once started).
        host: the address to listen on.
        startup_timeout: seconds to wait for the server to answer.
    """

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", startup_timeout: float = 30.0) -> None:
        self.requested_port = port
        self.host = host
        self.startup_timeout = startup_timeout
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the moto server is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> MotoServer:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local.moto_server",
                "--port",
                str(self.requested_port),
                "--parent-pid",
                str(os.getpid()),
                "--host",
                self.host,
            ],
            stdout=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        try:
            self.port = self._read_port()
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self

    def _read_port(self) -> int:
        process = self._process
        assert process is not None and process.stdout is not None
        box: dict[str, Any] = {}

        def read() -> None:
            assert process.stdout is not None
            box["line"] = process.stdout.readline()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(self.startup_timeout)
        line = box.get("line", b"")
        if not line:
            code = process.poll()
            reason = f"exited with code {code}" if code is not None else "did not start in time"
            raise RuntimeError(f"moto server on port {self.requested_port} {reason}")
        return int(json.loads(line)["port"])

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2.0):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto server at {self.url} does not answer") from None
                time.sleep(0.05)

    def reset(self) -> None:
        """Forget every resource (moto's ``/moto-api/reset``)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10.0):
            pass

    def snapshot(self, path: Path) -> bool:
        """Save DynamoDB, SQS and S3 to ``path`` (:mod:`local.snapshot`); whether the file was (re)written."""
        return bool(self._local("snapshot", path).get("written"))

    def restore(self, path: Path) -> dict[str, int]:
        """Load what :meth:`snapshot` saved at ``path`` (nothing if there is no file); returns the counts."""
        return {k: int(v) for k, v in self._local("restore", path).items()}

    def _local(self, action: str, path: Path) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/_local/{action}",
            data=json.dumps({"path": str(path)}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60.0) as response:
                return json.loads(response.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            reason = json.loads(exc.read() or b"{}").get("error", exc.reason)
            raise RuntimeError(f"moto server: {action} {path} failed: {reason}") from None

    def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto server (requests serialised)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on; 0 picks a free one")
    parser.add_argument("--parent-pid", type=int, default=None, help="exit when this process is gone")
    args = parser.parse_args(argv)
    serve(args.port, args.parent_pid, args.host)


if __name__ == "__main__":
    main()
