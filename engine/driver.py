"""The in-process driver: runs runs to the end on the in-memory queue, in this process.

Unit tests, benchmarks and the synchronous API mode use it. Retry delays are
waited out with ``sleep``; tests pass a fake clock whose sleep only moves time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engine.memory import (
    InMemoryGraphStore,
    InMemoryLogSink,
    InMemoryRunStore,
    InMemoryStepQueue,
    InMemoryTimers,
)
from engine.model import Run
from engine.registry import REGISTRY, ToolRegistry
from engine.service import StepDisposition, WorkflowService
from engine.step import Clock


class FakeClock:
    """A clock for tests: ``sleep`` moves time forward at once."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class InProcessDriver:
    """A :class:`WorkflowService` on in-memory adapters, with a loop that drains the queue."""

    def __init__(
        self,
        registry: ToolRegistry = REGISTRY,
        *,
        clock: Clock = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] | None = None,
    ) -> None:
        self.queue = InMemoryStepQueue()
        self.timers = InMemoryTimers(self.queue)
        runs = InMemoryRunStore()
        self.sink = InMemoryLogSink(runs)
        extra: dict[str, Any] = {"rng": rng} if rng is not None else {}
        self.service = WorkflowService(
            graphs=InMemoryGraphStore(),
            runs=runs,
            queue=self.queue,
            registry=registry,
            sink=self.sink,
            clock=clock,
            timers=self.timers,
            **extra,
        )
        self.clock = clock
        self.sleep = sleep

    def drain(self, max_messages: int = 1_000_000) -> int:
        """Process queued messages until none is left, nor any timer; returns how many were handled.

        With the queue empty, the clock is slept to the next timer, which then fires.
        """
        handled = 0
        while handled < max_messages:
            message = self.queue.pop()
            if message is None:
                due = self.timers.next_due()
                if due is None:
                    break
                self.sleep(max(due - self.clock(), 0.0))
                self.timers.fire_due(max(due, self.clock()))
                continue
            handled += 1
            result = self.service.run_step(message)
            if result.disposition is StepDisposition.DEFERRED:
                self.sleep(result.defer_seconds)
                self.queue.send(message)
        return handled

    def run(self, graph_id: str, initial_state: dict[str, Any] | None = None) -> Run:
        """Start a run and drive the queue until it is empty; returns the run as it ended."""
        run = self.service.start_run(graph_id, initial_state)
        self.drain()
        return self.service.get_run(run.run_id)
