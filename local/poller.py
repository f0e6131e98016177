"""Plays the Lambda SQS event source mappings of the local stack: worker threads that poll queues.

Each worker long-polls its queue (``WaitTimeSeconds`` 1 by default, so a stop
takes effect within a second or so plus any invocation in flight) and hands each
batch to :class:`local.esm.EventSourceMapping`, which invokes the handler,
deletes what succeeded and leaves the rest (``batchItemFailures``, or the whole
batch when the invocation failed) to the queue's visibility timeout and
redrive policy. Several workers on one FIFO queue behave like Lambda's
concurrent pollers: SQS hands a message group to one of them at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from local.esm import BatchOutcome, EventSourceMapping

log = logging.getLogger(__name__)

ERROR_BACKOFF_SECONDS = 1.0


@dataclass
class MappingStats:
    """What one mapping has delivered so far (the counts of records, batches and failed invocations)."""

    received: int = 0
    failed: int = 0
    batches: int = 0
    invocation_errors: int = 0
    poll_errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcome: BatchOutcome) -> None:
        with self._lock:
            self.batches += 1
            self.received += outcome.received
            self.failed += outcome.failed
            if outcome.error is not None:
                self.invocation_errors += 1


class Poller:
    """Worker threads delivering SQS batches to handlers, one group of workers per mapping."""

    def __init__(self) -> None:
        self._mappings: list[tuple[EventSourceMapping, int]] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.stats: dict[str, MappingStats] = {}

    def add(self, mapping: EventSourceMapping, workers: int = 1) -> None:
        """Poll ``mapping``'s queue with ``workers`` concurrent workers once started."""
        if workers < 1:
            raise ValueError("a mapping needs at least one worker")
        self._mappings.append((mapping, workers))
        self.stats[mapping.function_name] = MappingStats()

    def start(self) -> None:
        self._stop.clear()
        for mapping, _workers in self._mappings:
            mapping.stopping = False
        for mapping, workers in self._mappings:
            for index in range(workers):
                thread = threading.Thread(
                    target=self._work,
                    args=(mapping, self.stats[mapping.function_name]),
                    name=f"poller-{mapping.function_name}-{index}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)

    def _work(self, mapping: EventSourceMapping, stats: MappingStats) -> None:
        while not self._stop.is_set():
            try:
                outcome = mapping.poll_once()
            except Exception as exc:
                if self._stop.is_set():
                    break
                stats.poll_errors += 1
                log.warning("polling %s failed: %r", mapping.queue_url, exc)
                self._stop.wait(ERROR_BACKOFF_SECONDS)
                continue
            if outcome.received:
                stats.add(outcome)

    def stop(self, timeout: float = 30.0, *, warn: bool = True) -> None:
        """Stop polling; waits up to ``timeout`` seconds in all for batches in flight to be delivered.

        Workers still busy then are left running (call again to wait for them).
        """
        self._stop.set()
        for mapping, _workers in self._mappings:
            mapping.stopping = True
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]
        if self._threads and warn:
            log.warning("%d poller workers still busy after %gs", len(self._threads), timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)
