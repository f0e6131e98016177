"""The local stack: the whole system on one machine, with the handler code that runs on AWS.

``python -m local.stack`` (``make dev``) starts

* a moto server (DynamoDB, SQS, S3) with the table, bucket and queues of
  ``template.yaml`` (:func:`local.resources.create_resources`);
* a gateway on one port (:mod:`local.gateway`): the HTTP API for
  ``functions/api``, the WebSocket API at ``/ws`` for ``functions/ws``, and the
  API Gateway management endpoint the handlers post WebSocket frames to;
* a poller (:mod:`local.poller`) that delivers the step queue to
  ``functions/step`` and the dead-letter queue to ``functions/dlq``, as the
  Lambda event source mappings do.

Each function runs in execution environments of its own (:mod:`local.runtime`):
processes that serve one invocation at a time, with the handler environment a
deployment gets from the template (``TABLE_NAME``, ``STEP_QUEUE_URL``...) pointed
at moto and at the gateway. The URLs are printed and written to
``.local-stack/stack.json`` (:mod:`local.state_file`) until the stack stops
(Ctrl-C or SIGTERM).

``python -m local.stack`` keeps its data in ``.local-stack/data/`` (``--data-dir``):
DynamoDB, SQS and S3 are saved to ``snapshot.json`` there (:mod:`local.snapshot`)
every few seconds while something changes and when the stack stops, and loaded
back when it starts, so graphs, runs and logs survive a restart and a run that
was in flight goes on. ``--fresh`` starts empty. ``LocalStack`` from Python keeps
nothing unless given a ``data_dir``.

Callers authenticate as on AWS (:mod:`local.auth`). ``--auth sigv4`` (the
default): requests are SigV4-signed with a key of ``.local-stack/credentials.json``;
the stack creates a ``developer`` key there on first start, prints it and puts
it in ``stack.json``, where ``wf`` and :class:`local.client.WorkflowClient`
find it. ``--auth jwt --jwt-issuer ISS --jwt-audience AUD --jwks-file FILE``:
bearer JWTs, checked by the WebSocket authorizer's code. ``--auth none``: a
development mode where every request comes from one fixed caller (``--caller``).

From Python (tests, demo, benchmarks)::

    with LocalStack(port=0, moto_port=0, workers=4) as stack:
        httpx.post(f"{stack.http_url}/graphs", json=...)
        websockets.connect(f"{stack.ws_url}?run_id=...")
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from functions.shared import log_lines
from local import snapshot, state_file
from local.auth import (
    DEV_CALLER,
    Authenticator,
    CredentialTable,
    JwtAuthenticator,
    LocalCredential,
    NoAuthenticator,
    SigV4Authenticator,
)
from local.esm import EventSourceMapping
from local.gateway import EventLoopThread, Gateway
from local.moto_server import MotoServer
from local.poller import Poller
from local.request_log import RequestLog
from local.resources import (
    Resources,
    SchedulerResources,
    create_resources,
    create_scheduler_resources,
    load_template,
    resolve,
)
from local.runtime import FunctionConfig, InvocationError, LocalFunction, Zygote
from local.scheduler import LocalClock, SchedulerEmulator

log = logging.getLogger(__name__)

REGION = "us-east-1"
ACCESS_KEY = "testing"
CREDENTIALS_FILE = state_file.STATE_FILE.parent / "credentials.json"
DEVELOPER = "developer"
AUTH_MODES = ("sigv4", "jwt", "none")
DEFAULT_VISIBILITY_TIMEOUT = 10
DATA_DIR = state_file.ROOT / ".local-stack" / "data"
SNAPSHOT_INTERVAL_SECONDS = 5.0
STOP_GRACE_SECONDS = 3.0
HOLD_MARGIN_SECONDS = 10
"""Beyond the step function's timeout, how long a received batch stays hidden (an environment's start)."""
LOG_FORMATS = ("json", "text")
HANDLERS = {
    "api": "functions.api.app:lambda_handler",
    "ws": "functions.ws.app:lambda_handler",
    "step": "functions.step.app:lambda_handler",
    "dlq": "functions.dlq.app:lambda_handler",
    "trigger": "functions.trigger.app:lambda_handler",
}


@dataclass(frozen=True)
class FunctionSpec:
    """A function as the template declares it: handler, timeout, memory and plain environment variables."""

    handler: str
    timeout_seconds: float = 30.0
    memory_mb: int = 512
    environment: dict[str, str] = field(default_factory=dict)


def template_functions(template: Mapping[str, Any] | None = None) -> dict[str, FunctionSpec]:
    """The template's ``AWS::Serverless::Function`` resources, by their handler (``module:attribute``).

    ``Globals.Function`` applies; an environment value that is a ``!Ref`` to a
    parameter takes the parameter's default; other intrinsic values (ARNs,
    names of deployed resources) are left out, since the stack sets its own.
    """
    template = template if template is not None else load_template()
    defaults = dict(template.get("Globals", {}).get("Function", {}))
    parameters = template.get("Parameters", {})
    found: dict[str, FunctionSpec] = {}
    for spec in template.get("Resources", {}).values():
        if spec.get("Type") != "AWS::Serverless::Function":
            continue
        props = {**defaults, **(spec.get("Properties") or {})}
        handler = props.get("Handler")
        if not isinstance(handler, str) or "." not in handler:
            continue
        module, _, attribute = handler.rpartition(".")
        variables = {
            **(defaults.get("Environment") or {}).get("Variables", {}),
            **((spec.get("Properties") or {}).get("Environment") or {}).get("Variables", {}),
        }
        environment: dict[str, str] = {}
        for key, declared in variables.items():
            value = declared
            if isinstance(declared, dict) and set(declared) == {"Ref"} and declared["Ref"] in parameters:
                value = parameters[declared["Ref"]].get("Default")
            if isinstance(value, str | int | float | bool):
                environment[key] = str(value).lower() if isinstance(value, bool) else str(value)
        found[f"{module}:{attribute}"] = FunctionSpec(
            handler=f"{module}:{attribute}",
            timeout_seconds=float(resolve(props.get("Timeout", 3), template)),
            memory_mb=int(resolve(props.get("MemorySize", 128), template)),
            environment=environment,
        )
    return found


class LocalStack:
    """moto server, gateway and poller, started together and stopped together.

    Args:
        port: the gateway's port on 127.0.0.1 (HTTP API, ``/ws``, management API); 0 picks a free one.
        moto_port: the moto server's port on 127.0.0.1; 0 picks a free one.
        workers: concurrent step invocations (step queue pollers, and step environments).
        visibility_timeout: seconds set as the local step queue's ``VisibilityTimeout``,
            so that a step whose invocation failed is retried this soon; ``None`` keeps
            the template's value.
        tool_modules: ``WORKFLOW_TOOL_MODULES`` for the handlers; default: this process's
            environment variable, else the handlers' default.
        environment: more variables for every handler's environment.
        handlers: ``module:attribute`` overrides for the ``api``, ``ws``, ``step``, ``dlq`` or ``trigger`` handler.
        log_level: ``POWERTOOLS_LOG_LEVEL`` for the handlers.
        log_format: ``"json"``: the handlers log Powertools' JSON lines, as deployed; ``"text"``:
            one short line per record (``GRAPHFLOW_LOG_FORMAT=text``) and, at ``log_level`` INFO
            or DEBUG, one line per HTTP request (:mod:`local.request_log`); at INFO the API's and
            WebSocket's own INFO records are left out, since the request line says what they would.
        metrics: print Powertools' EMF metric lines (off: ``POWERTOOLS_METRICS_DISABLED``).
        api_concurrency: concurrent HTTP API invocations.
        ws_concurrency: concurrent WebSocket invocations.
        warm: start the step, API and WebSocket environments before :meth:`start` returns.
        step_timeout_seconds: the step function's timeout (and ``STEP_FUNCTION_TIMEOUT_SECONDS``)
            instead of the template's, e.g. to see a step run out of time sooner.
        state_file: where to record the URLs while running (``python -m local.stack``
            uses ``.local-stack/stack.json``); ``None`` writes nothing.
        data_dir: the folder whose ``snapshot.json`` the data is loaded from at start and
            saved to while running and at stop (``python -m local.stack`` uses
            ``.local-stack/data``); ``None`` keeps nothing.
        fresh: with ``data_dir``, start empty (the saved data is discarded).
        snapshot_interval: seconds between saves while running (a save writes only if the data changed).
        stop_grace: seconds :meth:`stop` lets invocations in flight finish; those still running
            then are ended, and their messages stay in the queue (delivered again after a restart).
    """

    def __init__(
        self,
        port: int = 0,
        moto_port: int = 0,
        workers: int = 4,
        *,
        visibility_timeout: int | None = DEFAULT_VISIBILITY_TIMEOUT,
        tool_modules: Sequence[str] | None = None,
        environment: Mapping[str, str] | None = None,
        handlers: Mapping[str, str] | None = None,
        log_level: str = "INFO",
        log_format: str = "json",
        metrics: bool = False,
        api_concurrency: int = 8,
        ws_concurrency: int = 4,
        warm: bool = True,
        state_file: Path | None = None,
        prefix: str = "graphflow",
        step_timeout_seconds: float | None = None,
        data_dir: Path | None = None,
        fresh: bool = False,
        snapshot_interval: float = SNAPSHOT_INTERVAL_SECONDS,
        stop_grace: float = STOP_GRACE_SECONDS,
        auth: str = "sigv4",
        credentials_file: Path | None = None,
        jwt_issuer: str | None = None,
        jwt_audience: str | None = None,
        jwks: Mapping[str, Any] | None = None,
        caller: str = DEV_CALLER,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        unknown = set(handlers or {}) - set(HANDLERS)
        if unknown:
            raise ValueError(f"unknown functions {sorted(unknown)}; known: {sorted(HANDLERS)}")
        self.port = port
        self.moto_port = moto_port
        self.workers = workers
        self.visibility_timeout = visibility_timeout
        modules = tool_modules
        if modules is None and os.environ.get("WORKFLOW_TOOL_MODULES"):
            modules = [m.strip() for m in os.environ["WORKFLOW_TOOL_MODULES"].split(",") if m.strip()]
        self.tool_modules = tuple(modules) if modules is not None else None
        self.extra_environment = dict(environment or {})
        self.handlers = {**HANDLERS, **(handlers or {})}
        if log_format not in LOG_FORMATS:
            raise ValueError(f"log_format must be one of {LOG_FORMATS}")
        self.log_level = log_level
        self.log_format = log_format
        self.metrics = metrics
        self.api_concurrency = api_concurrency
        self.ws_concurrency = ws_concurrency
        self.warm = warm
        self.state_file = state_file
        self.prefix = prefix
        self.step_timeout_seconds = step_timeout_seconds
        self.data_dir = data_dir
        self.fresh = fresh
        self.snapshot_interval = snapshot_interval
        self.stop_grace = stop_grace
        self.restored: dict[str, int] = {}
        if auth not in AUTH_MODES:
            raise ValueError(f"auth must be one of {AUTH_MODES}")
        self.auth = auth
        self.caller = caller
        self.credential: LocalCredential | None = None
        """The ``developer`` key requests are signed with (``auth="sigv4"``)."""
        self.credentials = CredentialTable({})
        self.authenticator: Authenticator
        if auth == "sigv4":
            if credentials_file is not None:
                self.credentials = CredentialTable.load(credentials_file)
            self.credential = self.credentials.first_of(DEVELOPER) or self.credentials.add(DEVELOPER)
            if credentials_file is not None:
                self.credentials.save(credentials_file)
            self.authenticator = SigV4Authenticator(self.credentials)
        elif auth == "jwt":
            if not (jwt_issuer and jwt_audience and jwks is not None):
                raise ValueError("auth 'jwt' needs jwt_issuer, jwt_audience and jwks")
            from functions.shared.tokens import JwtValidator

            self.authenticator = JwtAuthenticator(JwtValidator(jwt_issuer, jwt_audience, jwks=jwks))
        else:
            self.authenticator = NoAuthenticator(caller)

        self.moto: MotoServer | None = None
        self.resources: Resources | None = None
        self.gateway: Gateway | None = None
        self.poller: Poller | None = None
        self.functions: dict[str, LocalFunction] = {}
        self.environment: dict[str, str] = {}
        self.started_at: datetime | None = None
        self._loop: EventLoopThread | None = None
        self._zygote: Zygote | None = None
        self._clients: dict[str, Any] = {}
        self._loaded = False
        self._saver: threading.Thread | None = None
        self._stop_saving = threading.Event()
        self.scheduler_resources: SchedulerResources | None = None
        self.scheduler: SchedulerEmulator | None = None
        self._clock_dir: tempfile.TemporaryDirectory[str] | None = None
        self._clock: LocalClock | None = None

    # the clock

    def clock(self) -> float:
        """The stack's time (epoch seconds): the system's plus what :meth:`advance_clock` added."""
        return self._local_clock()()

    def advance_clock(self, seconds: float) -> float:
        """Move the stack's clock ``seconds`` on, for the handlers and the scheduler alike; the new time.

        Waits and schedules due by then fire within about a second (the
        scheduler emulator's poll, then the step queue's).
        """
        return self._local_clock().advance(seconds)

    def _local_clock(self) -> LocalClock:
        if self._clock is None:
            raise RuntimeError("the local stack is not started")
        return self._clock

    @property
    def trigger_function_arn(self) -> str:
        """The ARN the graphs' trigger schedules target; the scheduler emulator invokes the trigger function for it."""
        return f"arn:aws:lambda:{REGION}:123456789012:function:{self.prefix}-trigger"

    # addresses

    @property
    def http_url(self) -> str:
        """The HTTP API, e.g. ``http://127.0.0.1:8000``."""
        return self._gateway().url

    @property
    def ws_url(self) -> str:
        """The WebSocket API, e.g. ``ws://127.0.0.1:8000/ws``."""
        return self._gateway().ws_url

    @property
    def moto_url(self) -> str:
        if self.moto is None:
            raise RuntimeError("the local stack is not started")
        return self.moto.url

    def _gateway(self) -> Gateway:
        if self.gateway is None or self.gateway.port is None:
            raise RuntimeError("the local stack is not started")
        return self.gateway

    def page_config(self) -> dict[str, Any]:
        """What the dashboard is told when served by this stack on 127.0.0.1: the auth mode, and the developer key."""
        if self.auth == "sigv4" and self.credential is not None:
            key = {"access_key": self.credential.access_key, "secret_key": self.credential.secret_key}
            return {"auth": "iam", "region": REGION, "credentials": key}
        return {"auth": "jwt" if self.auth == "jwt" else "none"}

    def client(self, service: str) -> Any:
        """A boto3 client for moto (``dynamodb``, ``sqs``, ``s3``) with the stack's fake credentials."""
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session(
                aws_access_key_id=ACCESS_KEY, aws_secret_access_key=ACCESS_KEY, region_name=REGION
            )
            config = Config(max_pool_connections=max(10, self.workers + 4), retries={"max_attempts": 3})
            self._clients[service] = session.client(
                service,  # type: ignore[call-overload]
                endpoint_url=self.moto_url,
                config=config,
            )
        return self._clients[service]

    @contextlib.contextmanager
    def handler_environment(self) -> Iterator[dict[str, str]]:
        """Give this process the handlers' environment while inside, to call them or ``wiring`` in-process.

        The handlers themselves run in their own processes and need none of this;
        it is for code that wants :func:`functions.shared.wiring.service` against the stack.
        """
        from functions.shared import wiring

        saved = dict(os.environ)
        os.environ.update(self.environment)
        wiring.reset()
        try:
            yield dict(self.environment)
        finally:
            os.environ.clear()
            os.environ.update(saved)
            wiring.reset()

    @property
    def snapshot_path(self) -> Path | None:
        """``snapshot.json`` in :attr:`data_dir`, or ``None`` when the stack keeps nothing."""
        return self.data_dir / snapshot.FILE_NAME if self.data_dir is not None else None

    def save(self) -> bool:
        """Save the data to :attr:`snapshot_path` now; whether the file was written (it is not if unchanged)."""
        path = self.snapshot_path
        if path is None or self.moto is None or not self._loaded:
            return False
        return self.moto.snapshot(path)

    def _load(self) -> None:
        path = self.snapshot_path
        assert path is not None and self.moto is not None
        if self.fresh:
            path.unlink(missing_ok=True)
        else:
            self.restored = self.moto.restore(path)
        self._loaded = True
        self._stop_saving.clear()
        self._saver = threading.Thread(target=self._save_periodically, name="local-stack-saver", daemon=True)
        self._saver.start()

    def _save_periodically(self) -> None:
        while not self._stop_saving.wait(self.snapshot_interval):
            try:
                self.save()
            except Exception as exc:
                log.warning("could not save the local stack's data: %s", exc)

    def info(self) -> dict[str, Any]:
        """What ``.local-stack/stack.json`` holds."""
        return {
            "http_url": self.http_url,
            "ws_url": self.ws_url,
            "moto_url": self.moto_url,
            "pid": os.getpid(),
            "started_at": (self.started_at or datetime.now(UTC)).isoformat(timespec="seconds"),
            "auth": self.auth,
            **(
                {
                    "credential": {
                        "access_key": self.credential.access_key,
                        "secret_key": self.credential.secret_key,
                        "arn": self.credential.arn,
                    }
                }
                if self.credential is not None
                else {}
            ),
        }

    # lifecycle

    def start(self) -> LocalStack:
        """Start everything; on failure, stop what was started and raise."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._zygote = Zygote()
        self.moto = MotoServer(self.moto_port).start()
        self.resources = create_resources(
            self.client("dynamodb"), self.client("sqs"), self.client("s3"), prefix=self.prefix, region=REGION
        )
        self.scheduler_resources = create_scheduler_resources(
            self.client("scheduler"), self.client("iam"), prefix=self.prefix
        )
        self._clock_dir = tempfile.TemporaryDirectory(prefix="graphflow-clock-")
        self._clock = LocalClock(Path(self._clock_dir.name) / "offset")
        if self.visibility_timeout is not None:
            self.client("sqs").set_queue_attributes(
                QueueUrl=self.resources.queue_url,
                Attributes={"VisibilityTimeout": str(self.visibility_timeout)},
            )
        if self.data_dir is not None:
            self._load()

        self._loop = EventLoopThread()
        self.gateway = Gateway(
            None,
            None,
            port=self.port,
            authenticator=self.authenticator,
            clock_handler=self._clock_answer,
            page_config=self.page_config(),
        )
        self._loop.run(self.gateway.start(), timeout=30)
        self.environment = self._handler_environment()
        self._zygote.wait_ready()
        declared = template_functions()
        concurrency = {
            "api": self.api_concurrency,
            "ws": self.ws_concurrency,
            "step": self.workers,
            "dlq": 1,
            "trigger": 1,
        }
        for name, handler in self.handlers.items():
            spec = declared.get(HANDLERS[name]) or FunctionSpec(HANDLERS[name])
            timeout = spec.timeout_seconds
            if name == "step" and self.step_timeout_seconds is not None:
                timeout = self.step_timeout_seconds
            quieter = {}
            if self.log_format == "text" and name in ("api", "ws") and self.log_level.upper() == "INFO":
                quieter["POWERTOOLS_LOG_LEVEL"] = "WARNING"
            self.functions[name] = LocalFunction(
                FunctionConfig(
                    name=f"{self.prefix}-{name}",
                    handler=handler,
                    environment={**spec.environment, **self.environment, **quieter},
                    concurrency=concurrency[name],
                    timeout_seconds=timeout,
                    memory_mb=spec.memory_mb,
                ),
                zygote=self._zygote,
            )
        if self.warm:
            self._warm({"step": self.workers, "api": 1, "ws": 1})
        request_lines = self.log_format == "text" and self.log_level.upper() in ("DEBUG", "INFO")
        self.gateway.http_handler = (
            RequestLog(self.functions["api"]) if request_lines else self.functions["api"]
        )
        self.gateway.ws_handler = self.functions["ws"]

        sqs = self.client("sqs")
        self.poller = Poller()
        self.poller.add(
            EventSourceMapping(
                sqs,
                self.resources.queue_url,
                self.resources.queue_arn,
                self.functions["step"],
                batch_size=10,
                wait_seconds=1,
                region=REGION,
                function_name="step",
                **self._step_hold(),
            ),
            workers=self.workers,
        )
        self.poller.add(
            EventSourceMapping(
                sqs,
                self.resources.replay_url,
                self.resources.replay_arn,
                self.functions["ws"],
                batch_size=10,
                wait_seconds=1,
                region=REGION,
                function_name="ws",
            ),
            workers=1,
        )
        self.poller.add(
            EventSourceMapping(
                sqs,
                self.resources.dlq_url,
                self.resources.dlq_arn,
                self.functions["dlq"],
                batch_size=10,
                wait_seconds=1,
                region=REGION,
                function_name="dlq",
            ),
            workers=1,
        )
        self.poller.start()
        self.scheduler = SchedulerEmulator(
            self.client("scheduler"),
            self.client("sqs"),
            self.scheduler_resources.group,
            self._clock,
            functions={self.trigger_function_arn: self.functions["trigger"].invoke},
        ).start()
        self.started_at = datetime.now(UTC)
        if self.state_file is not None:
            state_file.write(self.info(), self.state_file)

    def _step_hold(self) -> dict[str, int]:
        """With a step queue visibility timeout below the step function's timeout (which Lambda would
        refuse), receives hide their batch for the function's timeout plus :data:`HOLD_MARGIN_SECONDS`
        and a failed invocation's records come back after ``visibility_timeout``, so no record is
        received again while an invocation may still be running it (:mod:`local.esm`)."""
        timeout = self.functions["step"].config.timeout_seconds
        if self.visibility_timeout is None or self.visibility_timeout >= timeout:
            return {}
        return {
            "hold_seconds": math.ceil(timeout) + HOLD_MARGIN_SECONDS,
            "retry_seconds": self.visibility_timeout,
        }

    def _handler_environment(self) -> dict[str, str]:
        assert (
            self.resources is not None and self.gateway is not None and self.scheduler_resources is not None
        )
        environment = {
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": ACCESS_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "TABLE_NAME": self.resources.table_name,
            "BLOB_BUCKET": self.resources.bucket,
            "STEP_QUEUE_URL": self.resources.queue_url,
            "WS_REPLAY_QUEUE_URL": self.resources.replay_url,
            "WS_MANAGEMENT_ENDPOINT": self.gateway.url,
            "STEP_QUEUE_ARN": self.resources.queue_arn,
            "SCHEDULER_GROUP": self.scheduler_resources.group,
            "SCHEDULER_ROLE_ARN": self.scheduler_resources.role_arn,
            "TRIGGER_FUNCTION_ARN": self.trigger_function_arn,
            "TRIGGER_ROLE_ARN": self.scheduler_resources.role_arn,
            "LOCAL_CLOCK_FILE": str(self._local_clock().path),
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": self.log_level,
            log_lines.FORMAT_VARIABLE: self.log_format,
        }
        if not self.metrics:
            environment["POWERTOOLS_METRICS_DISABLED"] = "true"
        if self.tool_modules is not None:
            environment["WORKFLOW_TOOL_MODULES"] = ",".join(self.tool_modules)
        if self.step_timeout_seconds is not None:
            environment["STEP_FUNCTION_TIMEOUT_SECONDS"] = f"{self.step_timeout_seconds:g}"
        environment.update(self.extra_environment)
        return environment

    def _warm(self, counts: Mapping[str, int]) -> None:
        def warm(name: str) -> None:
            try:
                self.functions[name].warm(counts[name])
            except InvocationError as exc:
                log.warning("%s did not initialise: %s", name, exc)

        with ThreadPoolExecutor(max_workers=len(counts)) as pool:
            list(pool.map(warm, counts))

    def stop(self) -> None:
        """Stop the poller (batches in flight get ``stop_grace`` seconds), the gateway (clients get
        ``$disconnect``), the functions, then save the data (with ``data_dir``) and stop moto."""
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        self._stop_saving.set()
        if self._saver is not None:
            self._saver.join()
            self._saver = None
        if self.poller is not None:
            self.poller.stop(self.stop_grace, warn=False)
        if self.gateway is not None and self._loop is not None:
            try:
                self._loop.run(self.gateway.stop(), timeout=30)
            except Exception:
                log.exception("the gateway did not stop cleanly")
        self.gateway = None
        for function in self.functions.values():
            function.close()
        self.functions = {}
        if self.poller is not None:
            self.poller.stop()
            self.poller = None
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        for client in self._clients.values():
            client.close()
        self._clients = {}
        if self.moto is not None and self.moto.running and self._loaded:
            try:
                self.save()
            except Exception:
                log.exception("the local stack's data could not be saved")
        self._loaded = False
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        if self.state_file is not None:
            state_file.remove(self.state_file)
        if self._clock_dir is not None:
            self._clock_dir.cleanup()
            self._clock_dir = None
        self._clock = None

    def _clock_answer(self, advance: float) -> dict[str, float]:
        """``POST /_local/clock``'s answer: the clock moved ``advance`` seconds on, its time and offset."""
        clock = self._local_clock()
        now = clock.advance(advance) if advance else clock()
        return {"now": now, "offset": clock.offset}

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def healthy(self) -> bool:
        """The moto server, the environments' zygote and the poller are still running."""
        return (
            self.moto is not None
            and self.moto.running
            and self._zygote is not None
            and self._zygote.alive
            and self.poller is not None
            and self.poller.running
        )


def _restored(stack: LocalStack) -> str:
    if stack.fresh:
        return "started empty (--fresh)"
    counts = stack.restored
    if not any(counts.get(k) for k in ("items", "messages", "objects")):
        return "nothing saved yet"
    return (
        f"restored {counts.get('items', 0)} items, {counts.get('messages', 0)} queued steps, "
        f"{counts.get('objects', 0)} objects"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local.stack",
        description=(
            "Run the whole system locally: moto server (DynamoDB, SQS, S3), the HTTP and WebSocket APIs "
            "on one port, and the step and DLQ pollers, all with the real Lambda handlers."
        ),
    )
    parser.add_argument("--port", type=int, default=8000, help="gateway port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--moto-port", type=int, default=5000, help="moto server port on 127.0.0.1 (0: any)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent step invocations (default 4)")
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=DEFAULT_VISIBILITY_TIMEOUT,
        help=(
            "VisibilityTimeout (seconds) of the local step queue, lowered from the template's so that a "
            "step whose invocation crashed is retried this soon; 0 keeps the template's value (default %(default)s)"
        ),
    )
    parser.add_argument(
        "--tool-modules",
        default=None,
        help=(
            "comma-separated modules that register tools, added to the built-in ones "
            "(WORKFLOW_TOOL_MODULES; WORKFLOW_BUILTIN_TOOLS=false leaves the built-ins out)"
        ),
    )
    parser.add_argument(
        "--log-level", default="INFO", help="the handlers' POWERTOOLS_LOG_LEVEL (default INFO)"
    )
    parser.add_argument("--metrics", action="store_true", help="print the handlers' EMF metric lines")
    parser.add_argument(
        "--json-logs",
        action="store_true",
        default=os.environ.get(log_lines.FORMAT_VARIABLE, "").strip().lower() == "json",
        help=(
            "the handlers' Powertools JSON log lines, as deployed, instead of one short line per request "
            f"and step (also {log_lines.FORMAT_VARIABLE}=json)"
        ),
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DATA_DIR,
        help="where the data is kept between runs, in snapshot.json (default %(default)s)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="start empty: discard the data kept in --data-dir"
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        default=state_file.STATE_FILE,
        help="where to write the URLs while running (default %(default)s)",
    )
    parser.add_argument(
        "--auth",
        choices=AUTH_MODES,
        default="sigv4",
        help="sigv4 (default): SigV4 with the keys of --credentials-file; jwt: bearer JWTs; "
        "none: no checks, every request comes from --caller (development only)",
    )
    parser.add_argument(
        "--credentials-file",
        type=Path,
        default=CREDENTIALS_FILE,
        help="--auth sigv4: the access keys accepted (a 'developer' key is created; default %(default)s)",
    )
    parser.add_argument("--jwt-issuer", help="--auth jwt: the issuer (iss) tokens must have")
    parser.add_argument("--jwt-audience", help="--auth jwt: the audience (aud or client_id) tokens must have")
    parser.add_argument("--jwks-file", type=Path, help="--auth jwt: the issuer's keys, a JWKS JSON file")
    parser.add_argument("--caller", default=DEV_CALLER, help="--auth none: the caller (default %(default)s)")
    return parser


def _auth_lines(stack: LocalStack, credentials_file: Path) -> list[str]:
    if stack.credential is not None:
        return [
            f"  auth       SigV4 (region {REGION}, service execute-api), keys in {credentials_file}",
            f"             AWS_ACCESS_KEY_ID={stack.credential.access_key}",
            f"             AWS_SECRET_ACCESS_KEY={stack.credential.secret_key}",
            f"             caller {stack.credential.arn}; wf uses this key by itself",
        ]
    if stack.auth == "jwt":
        return ["  auth       JWT: Authorization: Bearer <token> (WebSocket: ?token=<token>)"]
    return [f"  auth       NONE (development mode): every request comes from {stack.caller}"]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    running = state_file.read(args.state_file)
    if running is not None:
        print(
            f"a local stack is already running (pid {running['pid']}) at {running['http_url']}; "
            "stop it first (Ctrl-C in its terminal)",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    modules = [m.strip() for m in args.tool_modules.split(",") if m.strip()] if args.tool_modules else None
    stack = LocalStack(
        port=args.port,
        moto_port=args.moto_port,
        workers=args.workers,
        visibility_timeout=args.visibility_timeout or None,
        tool_modules=modules,
        log_level=args.log_level,
        log_format="json" if args.json_logs else "text",
        metrics=args.metrics,
        state_file=args.state_file,
        data_dir=args.data_dir,
        fresh=args.fresh,
        auth=args.auth,
        credentials_file=args.credentials_file,
        jwt_issuer=args.jwt_issuer,
        jwt_audience=args.jwt_audience,
        jwks=json.loads(args.jwks_file.read_text()) if args.jwks_file else None,
        caller=args.caller,
    )
    started = time.monotonic()
    try:
        stack.start()
    except Exception as exc:
        print(f"the local stack did not start: {exc}", file=sys.stderr)
        return 1
    try:
        print(
            "\n".join(
                [
                    f"local stack up in {time.monotonic() - started:.1f}s (pid {os.getpid()})",
                    f"  HTTP API   {stack.http_url}",
                    f"  WebSocket  {stack.ws_url}",
                    f"  dashboard  {stack.http_url}/dashboard",
                    f"  moto       {stack.moto_url}",
                    f"  state      {args.state_file}",
                    f"  data       {args.data_dir} ({_restored(stack)})",
                    *_auth_lines(stack, args.credentials_file),
                    "Ctrl-C to stop.",
                ]
            ),
            flush=True,
        )
        while not stop.wait(1.0):
            if not stack.healthy:
                print("the moto server or the poller stopped; shutting down", file=sys.stderr)
                return 1
        return 0
    finally:
        print("stopping the local stack...", file=sys.stderr, flush=True)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
