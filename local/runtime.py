"""Lambda execution environments for the local stack: one process per environment, one invocation at a time.

A Lambda execution environment serves one invocation at a time, and the
handlers rely on it: Powertools' batch processor, the HTTP resolver, Logger and
Metrics keep per-invocation state in module-level objects, which concurrent
invocations in threads of one process would mix up. So each environment here
is a process that imports its handler once (its cold start) and then serves
invocations sent over a pipe, like Lambda's runtime API. A
:class:`LocalFunction` keeps up to ``concurrency`` of them, started on demand
and reused while warm. An environment whose invocation overruns the function's
timeout, or that dies, is discarded, as Lambda does.

Environments are forked from a :class:`Zygote` when one is given: a process
that has already imported the heavy third-party packages (boto3, pydantic,
Powertools), so a cold start only imports the project's own modules. Without
one, each environment is a fresh ``python -m local.runtime`` (POSIX only either way).

An environment's variables are the function's, on top of the stack's own minus
any ``AWS_*`` and ``POWERTOOLS_*`` ones (a developer's AWS profile or
credentials never reach a local handler). Handler output (Powertools' JSON
logs) goes to the stack's own stdout and stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any

from local.lambda_context import LocalContext
from local.state_file import pid_alive

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
PRELOAD = (
    "boto3",
    "botocore.session",
    "pydantic",
    "aws_xray_sdk.core",
    "aws_lambda_powertools",
    "aws_lambda_powertools.event_handler",
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.data_classes",
    "aws_lambda_powertools.utilities.typing",
)
_LAMBDA_VARIABLES = ("AWS_", "POWERTOOLS_", "_X_AMZN_", "LAMBDA_", "_HANDLER")


class InvocationError(Exception):
    """An invocation failed: the handler raised, timed out, or its environment died.

    Attributes:
        error_type: Lambda's ``errorType``, e.g. ``ValueError`` or ``Sandbox.Timedout``.
    """

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


@dataclass(frozen=True)
class FunctionConfig:
    """What Lambda knows about a function: its name, handler (``module:attribute``), limits and environment."""

    name: str
    handler: str
    environment: dict[str, str]
    concurrency: int = 4
    timeout_seconds: float = 30.0
    memory_mb: int = 512


def _child_environment(config: FunctionConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LAMBDA_VARIABLES)}
    env.update(config.environment)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.getcwd(), os.environ.get("PYTHONPATH")) if p
    )
    env.setdefault("AWS_LAMBDA_FUNCTION_NAME", config.name)
    env.setdefault("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", str(config.memory_mb))
    return env


class Zygote:
    """A process with the handlers' dependencies imported, that forks execution environments on request.

    The process starts at once; :meth:`wait_ready` (or the first :meth:`fork`)
    waits for its imports, so other start-up work can overlap them.

    Args:
        preload: modules to import once; those missing are skipped.
    """

    def __init__(self, preload: Sequence[str] = PRELOAD, *, startup_timeout: float = 60.0) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.getcwd(), env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local.runtime",
                "zygote",
                "--fd",
                str(theirs.fileno()),
                "--preload",
                ",".join(preload),
            ],
            pass_fds=(theirs.fileno(),),
            env=env,
            cwd=os.getcwd(),
        )
        theirs.close()
        self._socket = ours
        self._lock = threading.Lock()
        self.startup_timeout = startup_timeout
        self.preloaded: list[str] | None = None

    def wait_ready(self) -> Zygote:
        """Wait until the preloading is done (the first :meth:`fork` waits too)."""
        with self._lock:
            self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        if self.preloaded is not None:
            return
        self._socket.settimeout(self.startup_timeout)
        try:
            reply = self._read_line()
        except (OSError, ValueError, EOFError):
            raise RuntimeError("the zygote process did not start") from None
        self._socket.settimeout(None)
        self.preloaded = list(reply.get("preloaded", []))

    def _read_line(self) -> dict[str, Any]:
        data = b""
        while not data.endswith(b"\n"):
            chunk = self._socket.recv(4096)
            if not chunk:
                raise EOFError("the zygote exited")
            data += chunk
        return json.loads(data)  # type: ignore[no-any-return]

    def fork(self, handler: str, environment: dict[str, str]) -> tuple[int, Connection]:
        """A new environment serving ``handler``: its pid and our end of its pipe."""
        ours, theirs = Pipe(duplex=True)
        request = json.dumps({"handler": handler, "environment": environment}).encode() + b"\n"
        try:
            with self._lock:
                self._wait_ready()
                socket.send_fds(self._socket, [request], [theirs.fileno()])
                reply = self._read_line()
        except (OSError, EOFError, ValueError, RuntimeError) as exc:
            ours.close()
            raise InvocationError("Runtime.ZygoteError", f"could not fork an environment: {exc!r}") from None
        finally:
            theirs.close()
        if "pid" not in reply:
            ours.close()
            raise InvocationError("Runtime.ZygoteError", str(reply.get("error")))
        return int(reply["pid"]), ours

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        self._socket.close()
        try:
            self.process.wait(5.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class _Environment:
    """One execution environment process."""

    def __init__(self, config: FunctionConfig, zygote: Zygote | None) -> None:
        self.config = config
        environment = _child_environment(config)
        self._popen: subprocess.Popen[bytes] | None = None
        if zygote is not None:
            self.pid, self.conn = zygote.fork(config.handler, environment)
            return
        ours, theirs = Pipe(duplex=True)
        self._popen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local.runtime",
                "serve",
                "--fd",
                str(theirs.fileno()),
                "--handler",
                config.handler,
            ],
            pass_fds=(theirs.fileno(),),
            env=environment,
            cwd=os.getcwd(),
        )
        theirs.close()
        self.pid = self._popen.pid
        self.conn = ours

    def wait_ready(self, timeout: float) -> None:
        """Wait for the handler's import (the cold start) to finish."""
        name = self.config.name
        if not self.conn.poll(timeout):
            self.kill()
            raise InvocationError("Runtime.InitTimeout", f"{name} did not start in {timeout:g}s")
        try:
            kind, payload = self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise InvocationError("Runtime.ExitError", f"{name} exited during init") from None
        if kind != "ready":
            self.kill()
            raise InvocationError(
                payload.get("errorType", "Runtime.InitError"), payload.get("errorMessage", "")
            )

    def invoke(self, event: Any, request_id: str | None) -> Any:
        config = self.config
        context = {
            "function_name": config.name,
            "memory_limit_in_mb": config.memory_mb,
            "timeout_seconds": config.timeout_seconds,
        }
        if request_id:
            context["aws_request_id"] = request_id
        try:
            self.conn.send((event, context))
            ready = self.conn.poll(config.timeout_seconds)
        except OSError:
            ready = False
        if not ready:
            died = not self.alive
            self.kill()
            if died:
                raise InvocationError("Runtime.ExitError", f"{config.name}: the environment exited")
            raise InvocationError(
                "Sandbox.Timedout", f"{config.name}: task timed out after {config.timeout_seconds:g} seconds"
            )
        try:
            kind, payload = self.conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise InvocationError("Runtime.ExitError", f"{config.name}: the environment exited") from None
        if kind == "error":
            raise InvocationError(payload["errorType"], payload["errorMessage"])
        return payload

    @property
    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return pid_alive(self.pid)

    def close(self, timeout: float = 2.0) -> None:
        """Ask an idle environment to exit."""
        with contextlib.suppress(OSError):
            self.conn.send(None)
        deadline = time.monotonic() + timeout
        while self.alive and time.monotonic() < deadline:
            time.sleep(0.02)
        self.kill()

    def stop_process(self) -> None:
        """End a busy environment's process; its invocation fails with ``Runtime.ExitError``."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def kill(self) -> None:
        if self.alive:
            self.stop_process()
        if self._popen is not None:
            self._popen.wait()
        self.conn.close()


class LocalFunction:
    """A Lambda function: invocations go to warm environments, new ones start while under ``concurrency``.

    :meth:`invoke` blocks (call it from a thread) and is safe to call from many threads.

    Args:
        config: the function.
        zygote: fork environments from this process (fast cold starts); ``None`` starts each one afresh.
        startup_timeout: seconds an environment may take to import its handler.
    """

    def __init__(
        self, config: FunctionConfig, *, zygote: Zygote | None = None, startup_timeout: float = 60.0
    ) -> None:
        self.config = config
        self.zygote = zygote
        self.startup_timeout = startup_timeout
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._lock = threading.Lock()
        self._idle: list[_Environment] = []
        self._all: set[_Environment] = set()
        self._closed = False
        self.invocations = 0
        self.errors = 0
        self.cold_starts = 0

    @property
    def name(self) -> str:
        return self.config.name

    def __call__(self, event: Any, context: Any = None) -> Any:
        """Invoke like a handler: ``function(event, context)``; the context's request id is kept."""
        return self.invoke(event, getattr(context, "aws_request_id", None))

    def invoke(self, event: Any, request_id: str | None = None) -> Any:
        """Run the handler on ``event`` in an environment and return its result.

        Raises:
            InvocationError: the handler raised, timed out or its environment died.
        """
        with self._slots:
            environment = self._acquire()
            try:
                result = environment.invoke(event, request_id)
            except InvocationError:
                with self._lock:
                    self.invocations += 1
                    self.errors += 1
                self._release(environment)
                raise
            with self._lock:
                self.invocations += 1
            self._release(environment)
            return result

    def warm(self, count: int = 1) -> None:
        """Start up to ``count`` environments now, in parallel, rather than on the first invocations."""
        missing = max(0, min(count, self.config.concurrency) - len(self._all))
        started = [self._spawn() for _ in range(missing)]
        ready = []
        failure: InvocationError | None = None
        for environment in started:
            try:
                environment.wait_ready(self.startup_timeout)
            except InvocationError as exc:
                failure = exc
                with self._lock:
                    self._all.discard(environment)
                continue
            ready.append(environment)
        with self._lock:
            self._idle.extend(ready)
        if failure is not None:
            raise failure

    def _acquire(self) -> _Environment:
        with self._lock:
            if self._closed:
                raise InvocationError("Runtime.Closed", f"{self.name} is shut down")
            while self._idle:
                environment = self._idle.pop()
                if environment.alive:
                    return environment
                self._all.discard(environment)
        return self._start()

    def _spawn(self) -> _Environment:
        environment = _Environment(self.config, self.zygote)
        with self._lock:
            self.cold_starts += 1
            self._all.add(environment)
        return environment

    def _start(self) -> _Environment:
        environment = self._spawn()
        try:
            environment.wait_ready(self.startup_timeout)
        except InvocationError:
            with self._lock:
                self._all.discard(environment)
            raise
        with self._lock:
            if not self._closed:
                return environment
            self._all.discard(environment)
        environment.kill()
        raise InvocationError("Runtime.Closed", f"{self.name} is shut down")

    def _release(self, environment: _Environment) -> None:
        with self._lock:
            if environment.alive and not self._closed:
                self._idle.append(environment)
                return
            self._all.discard(environment)
        environment.kill()

    def close(self) -> None:
        """Stop every environment; invocations still running fail."""
        with self._lock:
            self._closed = True
            idle = list(self._idle)
            busy = [e for e in self._all if e not in idle]
            self._all.clear()
            self._idle.clear()
        for environment in busy:
            environment.stop_process()
        for environment in idle:
            environment.close()


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def serve(fd: int, handler_path: str) -> None:
    """The environment's loop: import the handler, then answer ``(event, context)`` requests until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    module_name, _, attribute = handler_path.partition(":")
    try:
        handler = getattr(importlib.import_module(module_name), attribute or "lambda_handler")
    except BaseException as exc:
        traceback.print_exc()
        conn.send(("init_error", _error(exc)))
        return
    conn.send(("ready", None))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        event, context = request
        started = time.monotonic()
        try:
            result = handler(event, LocalContext(**context))
        except BaseException as exc:
            print(
                f"[{module_name}] invocation failed after {time.monotonic() - started:.3f}s", file=sys.stderr
            )
            traceback.print_exc()
            sys.stderr.flush()
            conn.send(("error", _error(exc)))
            continue
        try:
            conn.send(("ok", result))
        except Exception as exc:
            conn.send(("error", _error(exc)))


def zygote(fd: int, preload: Sequence[str]) -> None:
    """Import ``preload``, then fork an environment for each request read from the socket ``fd``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    control = socket.socket(fileno=fd)
    loaded = []
    for module in preload:
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        loaded.append(module)
    control.sendall(json.dumps({"preloaded": loaded}).encode() + b"\n")
    buffer = b""
    received: list[int] = []
    while True:
        try:
            data, fds, _flags, _address = socket.recv_fds(control, 1 << 20, 4)
        except OSError:
            return
        if not data:
            return
        buffer += data
        received.extend(fds)
        if not buffer.endswith(b"\n"):
            continue
        request, buffer = json.loads(buffer), b""
        if not received:
            control.sendall(json.dumps({"error": "no pipe was passed"}).encode() + b"\n")
            continue
        fd, *extra = received
        received = []
        for unused in extra:
            os.close(unused)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.environ.clear()
            os.environ.update(request["environment"])
            try:
                serve(fd, request["handler"])
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
        os.close(fd)
        control.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="local Lambda execution environments (started by the local stack)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("serve", help="one environment")
    one.add_argument("--fd", type=int, required=True, help="the pipe to the stack")
    one.add_argument("--handler", required=True, help="module:attribute of the handler")
    many = commands.add_parser("zygote", help="fork environments on request")
    many.add_argument("--fd", type=int, required=True, help="the control socket")
    many.add_argument("--preload", default=",".join(PRELOAD), help="modules to import before forking")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.fd, args.handler)
    else:
        zygote(args.fd, [m for m in args.preload.split(",") if m])


if __name__ == "__main__":
    main()
