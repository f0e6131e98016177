"""A model of an SQS FIFO queue for the fault-schedule tests: FIFO within a message group, a group held while
its first message is in flight or hidden, and duplicates (same ``dedup_id``) dropped while queued.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.driver import FakeClock
from engine.model import StepMessage


@dataclass
class Entry:
    message: StepMessage
    visible_at: float
    in_flight: bool = False


class FifoQueue:
    """``before_send`` runs first at each send: the tests' hook for a process that dies while sending."""

    def __init__(self, clock: FakeClock, before_send: Callable[[], None]) -> None:
        self.clock = clock
        self.before_send = before_send
        self.groups: dict[str, list[Entry]] = {}

    def send(self, message: StepMessage) -> None:
        self.before_send()
        group = self.groups.setdefault(message.group, [])
        if any(e.message.dedup_id == message.dedup_id for e in group):
            return
        group.append(Entry(message, visible_at=self.clock.now))

    def heads(self) -> list[Entry]:
        """The messages a receive may return now: each group's first, unless in flight or hidden."""
        out = []
        for name in sorted(self.groups):
            group = self.groups[name]
            if group and not group[0].in_flight and group[0].visible_at <= self.clock.now:
                out.append(group[0])
        return out

    def next_visible(self) -> float | None:
        times = [g[0].visible_at for g in self.groups.values() if g and not g[0].in_flight]
        return min(times) if times else None

    def delete(self, entry: Entry) -> None:
        self.groups[entry.message.group].remove(entry)

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups.values())
