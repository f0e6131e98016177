"""The local stack's clock and its EventBridge Scheduler: moto stores schedules, this fires them.

:class:`LocalClock` is the stack's time: the system's plus an offset that tests
move (``LocalStack.advance_clock``, ``POST /_local/clock``) instead of sleeping.
The offset is written to a file that every handler process reads
(``LOCAL_CLOCK_FILE``, :mod:`functions.shared.clock`), so the service in the
step function sees the same time as the emulator.

:class:`SchedulerEmulator` is a thread that, every :data:`POLL_SECONDS`, lists
the schedules of its group on moto, reads each, and fires those due under the
clock, as EventBridge Scheduler would:

* ``at()``: once, at that time; then deleted if its ``ActionAfterCompletion``
  is ``DELETE`` (the timers' are).
* ``rate()``: every period from when the emulator first saw the schedule (about
  its creation); ``cron()``: at each matching minute (:func:`engine.triggers.next_fire`).
  A clock moved past several firings fires the latest only, once (the real
  scheduler never sees time jump).

A target that is an SQS queue ARN gets ``Input`` with the target's
``SqsParameters.MessageGroupId`` (and no deduplication id, as the scheduler
sends); a Lambda ARN (the trigger function) is invoked with ``Input`` parsed.
``<aws.scheduler.scheduled-time>`` and ``<aws.scheduler.execution-id>`` in the
input are replaced, as the scheduler's context attributes are.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.triggers import next_fire

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5


class LocalClock:
    """System time plus an offset, kept in ``path`` for the handlers' processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0.0
        self._lock = threading.Lock()
        self._write()

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock ``seconds`` on (not back: a negative value is refused); the new time."""
        if seconds < 0:
            raise ValueError("the local clock only moves forward")
        with self._lock:
            self._offset += seconds
            self._write()
        return self()

    def _write(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(repr(self._offset))
        temporary.replace(self.path)

    def __call__(self) -> float:
        return time.time() + self._offset


def _timestamp(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


class SchedulerEmulator:
    """Fires the schedules of ``group`` on moto under ``clock``.

    Args:
        scheduler: a boto3 ``scheduler`` client on moto.
        sqs: a boto3 ``sqs`` client on moto (queue targets).
        group: the schedule group to watch.
        clock: the stack's clock.
        functions: Lambda function ARN -> a callable taking the event (Lambda targets).
    """

    def __init__(
        self,
        scheduler: Any,
        sqs: Any,
        group: str,
        clock: Callable[[], float],
        functions: dict[str, Callable[[Any], Any]] | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.scheduler = scheduler
        self.sqs = sqs
        self.group = group
        self.clock = clock
        self.functions = dict(functions or {})
        self.poll_seconds = poll_seconds
        self.fired = 0
        self.results: list[Any] = []
        """What each Lambda target invocation answered, in order (its error, for one that failed)."""
        self._queue_urls: dict[str, str] = {}
        self._seen: dict[tuple[str, float], tuple[float, float]] = {}
        """(name, last modified) -> (anchor, last firing) of each recurring schedule."""
        self._done: set[tuple[str, float]] = set()
        """The one-time schedules fired (those not deleted after firing)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SchedulerEmulator:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="local-scheduler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.tick()
            except Exception as exc:
                log.warning("the local scheduler could not fire schedules: %s", exc)

    def tick(self) -> int:
        """Fire every schedule due now; how many fired."""
        now = self.clock()
        names: list[str] = []
        token: str | None = None
        while True:
            page = self.scheduler.list_schedules(
                GroupName=self.group, **({"NextToken": token} if token else {})
            )
            names += [s["Name"] for s in page.get("Schedules", []) if s.get("State", "ENABLED") == "ENABLED"]
            token = page.get("NextToken")
            if not token:
                break
        fired = 0
        for name in names:
            try:
                schedule = self.scheduler.get_schedule(GroupName=self.group, Name=name)
            except self.scheduler.exceptions.ResourceNotFoundException:
                continue
            due = self._due(schedule, now)
            if due is None:
                continue
            self._fire(schedule, due)
            fired += 1
        self.fired += fired
        return fired

    def _due(self, schedule: dict[str, Any], now: float) -> float | None:
        """The firing time due at ``now`` (the latest one passed), or ``None``."""
        expression = schedule["ScheduleExpression"]
        key = (schedule["Name"], _timestamp(schedule.get("LastModificationDate") or 0))
        if expression.startswith("at("):
            moment = next_fire(expression, float("-inf"), 0.0)
            if key in self._done or moment is None or moment > now:
                return None
            self._done.add(key)
            return moment
        anchor, last = self._seen.setdefault(key, (now, now))
        try:
            upcoming = next_fire(expression, last, anchor)
        except ValueError as exc:
            log.warning("schedule %s is not fired locally: %s", schedule["Name"], exc)
            return None
        if upcoming is None or upcoming > now:
            return None
        latest = upcoming
        while (following := next_fire(expression, latest, anchor)) is not None and following <= now:
            latest = following
        self._seen[key] = (anchor, latest)
        return latest

    def _fire(self, schedule: dict[str, Any], due: float) -> None:
        target = schedule["Target"]
        text = (
            str(target.get("Input", "{}"))
            .replace(
                "<aws.scheduler.scheduled-time>",
                datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            .replace("<aws.scheduler.execution-id>", uuid.uuid4().hex)
        )
        arn = str(target["Arn"])
        if arn.startswith("arn:aws:sqs:"):
            group = (target.get("SqsParameters") or {}).get("MessageGroupId")
            self.sqs.send_message(
                QueueUrl=self._queue_url(arn),
                MessageBody=text,
                **({"MessageGroupId": group} if group else {}),
            )
        elif arn in self.functions:
            try:
                self.results.append(self.functions[arn](json.loads(text)))
            except Exception as exc:
                log.warning("schedule %s: %s failed: %s", schedule["Name"], arn, exc)
                self.results.append({"error": f"{type(exc).__name__}: {exc}"})
        else:
            log.warning("schedule %s targets %s, which the local stack does not have", schedule["Name"], arn)
        if (
            schedule["ScheduleExpression"].startswith("at(")
            and schedule.get("ActionAfterCompletion") == "DELETE"
        ):
            with contextlib.suppress(self.scheduler.exceptions.ResourceNotFoundException):
                self.scheduler.delete_schedule(GroupName=self.group, Name=schedule["Name"])

    def _queue_url(self, arn: str) -> str:
        if arn not in self._queue_urls:
            name = arn.rsplit(":", 1)[-1]
            self._queue_urls[arn] = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        return self._queue_urls[arn]
