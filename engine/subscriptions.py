"""Following a run's log over a WebSocket connection: subscribe, replay the backlog, unsubscribe, forget.

The order a connection sees, and why it holds:

1. ``{"type": "subscribed", "run_id", "after", "status"}``: posted *before* the
   subscription is stored. A step publishes only to the subscribers stored on
   the run it committed, and the post of the ack has returned before the
   subscription is written, so no live frame can be posted to the connection
   ahead of the ack, however steps commit meanwhile.
2. The backlog: ``records`` frames with every stored record ``after < seq < live_from``,
   in pages of :data:`REPLAY_PAGE`. ``live_from`` is the run's ``next_seq`` as the
   subscription was stored: records committed before it are in the backlog, records
   committed after it go to the connection live, so none falls between the two.
3. ``{"type": "replayed", "run_id", "live_from", "status"}``: the backlog is
   out. If ``status`` is terminal the run has ended and ``live_from - 1`` is its
   last ``seq``.

Live ``records`` frames may arrive from step 2 on, interleaved with the backlog,
so a client orders records by ``seq`` and drops a ``seq`` it has seen.

A connection that is gone (its post answers gone) is forgotten by the sink; the
replay stops there.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field

from engine.errors import RunNotFoundError, TooManySubscribersError
from engine.frames import control_frame, error_frame, record_frames
from engine.model import Run
from engine.ports import ConnectionSink, ConnectionStore, RunStore

REPLAY_PAGE = 1000


class ReplayRequest(BaseModel):
    """A subscription asked for on ``$connect``, served once the connection is open (see :mod:`functions.ws.app`)."""

    connection_id: str = Field(min_length=1, max_length=128)
    run_id: str = Field(min_length=1, max_length=128)
    after: int = Field(ge=-1)
    owner: str = Field(min_length=1)
    endpoint: str = Field(min_length=1)


@dataclass(frozen=True)
class Subscribed:
    """What :meth:`Subscriptions.subscribe` did: ``delivered`` is ``False`` if the connection went away."""

    delivered: bool
    live_from: int
    replayed: int


class Subscriptions:
    """The subscription use case over the run and connection stores and a sink that posts to connections.

    Args:
        runs: where runs, their logs and their subscribers live.
        connections: the connection-to-runs index, so a disconnect can clean up.
        sink: posts frames to one connection (:meth:`engine.ports.ConnectionSink.post`).
        max_subscribers: the run's limit, checked before the ack is posted (the store enforces it too).
        page: records read per backlog page.
    """

    def __init__(
        self,
        runs: RunStore,
        connections: ConnectionStore,
        sink: ConnectionSink,
        *,
        max_subscribers: int,
        page: int = REPLAY_PAGE,
    ) -> None:
        self.runs = runs
        self.connections = connections
        self.sink = sink
        self.max_subscribers = max_subscribers
        self.page = page

    def check(self, run_id: str, owner: str, connection_id: str | None = None) -> Run:
        """The run, if ``owner`` may follow it and it has room for one more subscriber.

        :class:`RunNotFoundError` if the run is absent or another caller's;
        :class:`TooManySubscribersError` if it is full (a connection already on it does not count twice).
        """
        run = self.runs.get_run(run_id)
        if run.owner != owner:
            raise RunNotFoundError(f"no run {run_id!r}", run_id=run_id)
        if connection_id not in run.subscribers and len(run.subscribers) >= self.max_subscribers:
            raise TooManySubscribersError(
                f"run {run_id} already has {len(run.subscribers)} subscribers",
                run_id=run_id,
                limit=self.max_subscribers,
            )
        return run

    def subscribe(self, connection_id: str, run_id: str, *, owner: str, after: int = -1) -> Subscribed:
        """Ack, store the subscription, send the backlog after ``after``, then ``replayed`` (module docstring).

        Raises what :meth:`check` raises, before anything is posted or stored. If the
        run fills up between the check and the store (another connection won the last
        place), the ack is followed by the error frame ``too_many_subscribers`` and nothing is stored.
        """
        run = self.check(run_id, owner, connection_id)
        ack = control_frame("subscribed", run_id=run_id, after=after, status=run.status.value)
        if not self.sink.post(connection_id, [ack]):
            return Subscribed(False, run.next_seq, 0)
        try:
            stored = self.runs.add_subscriber(run_id, connection_id)
        except TooManySubscribersError as exc:
            self.sink.post(connection_id, [error_frame(exc.code, exc.message)])
            raise
        self.connections.add_connection(connection_id, run_id)
        live_from = stored.next_seq
        replayed = 0
        cursor = after
        while cursor < live_from - 1:
            page = [r for r in self.runs.list_logs(run_id, cursor, self.page) if r.seq < live_from]
            if not page:
                break
            if not self.sink.post(connection_id, list(record_frames(run_id, page))):
                return Subscribed(False, live_from, replayed)
            replayed += len(page)
            cursor = page[-1].seq
        done = control_frame("replayed", run_id=run_id, live_from=live_from, status=stored.status.value)
        return Subscribed(self.sink.post(connection_id, [done]), live_from, replayed)

    def unsubscribe(self, connection_id: str, run_id: str) -> None:
        """Stop following ``run_id`` on this connection (nothing happens if it did not)."""
        self.runs.remove_subscriber(run_id, connection_id)

    def forget(self, connection_id: str) -> None:
        """Unsubscribe a connection from every run it followed and drop its index entries."""
        for run_id in self.connections.runs_of(connection_id):
            self.runs.remove_subscriber(run_id, connection_id)
        self.connections.remove_connection(connection_id)

    def error(self, connection_id: str, code: str, message: str) -> bool:
        """Post an ``error`` frame; ``False`` if the connection is gone."""
        return self.sink.post(connection_id, [error_frame(code, message)])
