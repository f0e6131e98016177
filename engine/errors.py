"""Typed errors. The API maps each type to an HTTP status and a stable ``code``; never by message text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    code = "engine_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a graph definition, with where it is."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class InvalidGraphError(EngineError):
    """A graph definition failed validation; ``problems`` lists every problem found."""

    code = "invalid_graph"

    def __init__(self, problems: list[Problem]) -> None:
        summary = "; ".join(str(p) for p in problems)
        super().__init__(f"graph is invalid: {summary}")
        self.problems = problems


class BadRequestError(EngineError):
    """A request body or parameter that cannot be used."""

    code = "bad_request"


class UnauthenticatedError(EngineError):
    """The request carries no caller: the API answers 401."""

    code = "unauthenticated"


class TooDeepError(BadRequestError):
    """JSON nested deeper than its limit (:mod:`engine.limits`)."""

    code = "too_deep"


class NotFoundError(EngineError):
    code = "not_found"


class GraphNotFoundError(NotFoundError):
    code = "graph_not_found"


class RunNotFoundError(NotFoundError):
    code = "run_not_found"


class ToolNotFoundError(NotFoundError):
    code = "tool_not_found"


class StateKeyNotFoundError(NotFoundError):
    code = "state_key_not_found"


class ConflictError(EngineError):
    code = "conflict"


class StaleStepError(ConflictError):
    """The run moved on since it was read: another worker committed this step first."""

    code = "stale_step"


class RunFinishedError(ConflictError):
    """The run is in a terminal state and cannot be changed."""

    code = "run_finished"


class TooManySubscribersError(EngineError):
    """A run already has as many WebSocket subscribers as ``MAX_SUBSCRIBERS_PER_RUN`` allows."""

    code = "too_many_subscribers"


class RunActiveError(ConflictError):
    """The run has not ended, so it cannot be deleted."""

    code = "run_active"


class CallbackNotFoundError(NotFoundError):
    """No run waits for this callback token (it was never issued, or is malformed)."""

    code = "callback_not_found"


class CallbackUsedError(ConflictError):
    """The callback token was used already (approved or rejected), or its run ended."""

    code = "callback_used"


class GoneError(EngineError):
    code = "gone"


class CallbackExpiredError(GoneError):
    """The callback's time-out passed before it was used."""

    code = "callback_expired"


class RunNotRedrivableError(ConflictError):
    """Only a FAILED or TIMED_OUT run can be redriven."""

    code = "run_not_redrivable"


class PayloadTooLargeError(EngineError):
    code = "payload_too_large"


class StateTooLargeError(PayloadTooLargeError):
    """A run's state would be larger than :data:`engine.limits.MAX_STATE_BYTES`."""

    code = "state_too_large"


class ResponseTooLargeError(PayloadTooLargeError):
    """An answer would be larger than a Lambda response may be."""

    code = "response_too_large"


class ConditionError(EngineError):
    """An edge condition raised while it was evaluated; the run fails naming the node and rule."""

    code = "condition_failed"


class ToolTimeoutError(EngineError):
    """A tool ran past its node's ``timeout_seconds``."""

    code = "tool_timeout"


class ToolProcessDied(EngineError):
    """The isolated process running a tool ended without an answer (a signal, ``os._exit``, a crash)."""

    code = "tool_process_died"


class ToolMemoryExhausted(EngineError):
    """A tool ran out of the memory its isolated process may use."""

    code = "tool_memory_exhausted"


class QueueUnavailableError(EngineError):
    """The step queue refused or did not answer a send: nothing was started, and the call may be repeated."""

    code = "queue_unavailable"


class TimersUnavailableError(QueueUnavailableError):
    """The scheduler refused or did not answer a schedule's creation or deletion; the call may be repeated."""

    code = "timers_unavailable"
