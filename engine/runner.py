"""Running a tool, apart from deciding what its result means: in this process, or in a forked child.

:func:`engine.attempt.run_tool` calls a :class:`ToolRunner` with the tool, a
copy of the state, the context and a time limit, and gets the tool's return
value or its exception. Two runners:

* :data:`IN_PROCESS` calls the tool here (a thread when there is a time limit,
  an event loop for an async tool), as every step does by default.
* :class:`ForkRunner` calls it in a child forked for the attempt, with a hard
  time limit (the child is killed) and a memory limit (``RLIMIT_AS``). A tool
  that kills its process, exhausts its memory or hangs costs its own attempt
  (:class:`ToolProcessDied`, :class:`ToolMemoryExhausted`,
  :class:`ToolTimeoutError`) and nothing else: the caller lives on.

The child is made with ``os.fork`` and talks back over a
``multiprocessing`` ``Pipe`` (a socket pair), which works on Lambda, where
``/dev/shm`` (needed by ``Pool`` and ``Queue``) does not exist. POSIX only.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import resource
import signal
import sys
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection, Pipe
from typing import Any, Protocol

from engine.errors import ToolMemoryExhausted, ToolProcessDied, ToolTimeoutError
from engine.lazystate import LazyState
from engine.registry import Tool, ToolContext

MB = 1024 * 1024
CHILD_MEMORY_FLOOR_BYTES = 64 * MB
"""The least address space a child may grow by, whatever the function's memory."""
CHILD_MEMORY_RESERVE_BYTES = 64 * MB
"""Left to the parent (the handler) out of the function's memory when a child is sized."""


class ToolRunner(Protocol):
    """Runs one attempt of a tool and returns what it returned, or raises what it raised."""

    def run(self, tool: Tool, state: dict[str, Any], ctx: ToolContext, timeout: float | None) -> Any: ...


def _timeout_error(tool: Tool, timeout: float) -> ToolTimeoutError:
    return ToolTimeoutError(f"tool {tool.name!r} ran longer than {timeout:g}s")


def _run_async(tool: Tool, coroutine: Coroutine[Any, Any, Any], timeout: float | None) -> Any:
    """Run an async tool's coroutine to the end on an event loop of its own.

    A ``TimeoutError`` the tool raises itself stays a ``TimeoutError``; only the
    node's own timeout becomes :class:`ToolTimeoutError`. When this thread already
    runs an event loop (the service called from async code), ``asyncio.run``
    cannot nest, so the coroutine runs on a new loop in a worker thread.
    ``asyncio`` is imported here: a graph of sync tools never pays for it.
    """
    import asyncio

    async def bounded() -> Any:
        if timeout is None:
            return await coroutine
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                return await coroutine
        except TimeoutError:
            if scope.expired():
                raise _timeout_error(tool, timeout) from None
            raise

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"tool-{tool.name}") as pool:
        return pool.submit(asyncio.run, bounded()).result()


def invoke_tool(tool: Tool, state: dict[str, Any], ctx: ToolContext, timeout: float | None) -> Any:
    """Call a sync or async tool, failing with :class:`ToolTimeoutError` past ``timeout`` seconds.

    A sync tool that overruns keeps running in its daemon thread: Python cannot
    stop a thread. The attempt fails all the same and its result is discarded.
    """
    if tool.is_async:
        return _run_async(tool, tool.func(state, ctx), timeout)  # type: ignore[arg-type]
    if timeout is None:
        return tool.func(state, ctx)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = tool.func(state, ctx)
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"tool-{tool.name}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise _timeout_error(tool, timeout)
    if "error" in box:
        raise box["error"]
    return box.get("result")


class InProcessRunner:
    """Calls the tool in this process (:func:`invoke_tool`)."""

    def run(self, tool: Tool, state: dict[str, Any], ctx: ToolContext, timeout: float | None) -> Any:
        return invoke_tool(tool, state, ctx, timeout)


IN_PROCESS = InProcessRunner()


def _address_space_bytes() -> int | None:
    """This process's virtual memory size, from ``/proc/self/statm``; ``None`` where there is none."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def child_memory_bytes(function_memory_mb: int | None) -> int | None:
    """How much a child may allocate: the function's memory less what this process holds and a reserve."""
    if not function_memory_mb:
        return None
    room = function_memory_mb * MB - _resident_bytes() - CHILD_MEMORY_RESERVE_BYTES
    return max(CHILD_MEMORY_FLOOR_BYTES, room)


class _ErrorInChild(Exception):
    """Stands for an exception of the child's tool that could not be pickled back."""


def _rebuilt(type_name: str, message: str) -> Exception:
    """An exception of the same type name (what the run's error shows) when the real one cannot travel."""
    kind: type[Exception] = type(type_name, (_ErrorInChild,), {})
    return kind(message)


def _child(
    conn: Connection,
    tool: Tool,
    state: dict[str, Any],
    ctx: ToolContext,
    limits: tuple[int | None, float | None],
) -> None:
    memory, timeout = limits
    if timeout is not None:
        # A backstop for a child whose parent died before killing it (an orphan stops by itself).
        signal.alarm(max(1, math.ceil(timeout) + 1))
    if memory is not None:
        base = _address_space_bytes()
        if base is not None:
            limit = base + memory
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        result = invoke_tool(tool, state, ctx, None)
    except MemoryError:
        conn.send(("memory", None))
        return
    except Exception as exc:
        try:
            conn.send_bytes(pickle.dumps(("error", exc)))
        except Exception:
            conn.send(("error_text", (type(exc).__name__, str(exc))))
        return
    except BaseException as exc:  # SystemExit and the like: in-process, they would end the invocation
        conn.send(("died", f"{type(exc).__name__}: {exc}"))
        raise
    try:
        conn.send_bytes(pickle.dumps(("ok", result)))
    except MemoryError:
        conn.send(("memory", None))
    except Exception as exc:
        conn.send(("error_text", (type(exc).__name__, f"the tool's result cannot be sent back: {exc}")))


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"signal {-code} ({name})"
    return f"exit status {code}"


class ForkRunner:
    """Calls the tool in a forked child, killed at the time limit and limited to ``memory_bytes`` more memory.

    Args:
        memory_bytes: how much the child's address space may grow beyond the
            parent's at the fork (``RLIMIT_AS``).
        function_memory_mb: without ``memory_bytes``, size the limit at each
            fork from the function's memory (:func:`child_memory_bytes`).
            Neither: no memory limit.
    """

    def __init__(self, memory_bytes: int | None = None, *, function_memory_mb: int | None = None) -> None:
        self.memory_bytes = memory_bytes
        self.function_memory_mb = function_memory_mb

    def _memory_limit(self) -> int | None:
        if self.memory_bytes is not None:
            return self.memory_bytes
        return child_memory_bytes(self.function_memory_mb)

    def run(self, tool: Tool, state: dict[str, Any], ctx: ToolContext, timeout: float | None) -> Any:
        """Run the tool in a child; a state that loads values on read is loaded here first.

        The child must not share the parent's connections (a lazy state's loader
        uses the store's), so it gets a plain dict of every value.
        """
        if isinstance(state, LazyState):
            state = dict(state.items())
        memory = self._memory_limit()
        ours, theirs = Pipe(duplex=False)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; its outcome is read by the parent
            code = 0
            try:
                ours.close()
                _child(theirs, tool, state, ctx, (memory, timeout))
            except BaseException:
                code = 70
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        theirs.close()
        try:
            return self._outcome(tool, pid, ours, timeout)
        finally:
            ours.close()

    def _outcome(self, tool: Tool, pid: int, conn: Connection, timeout: float | None) -> Any:
        answered = conn.poll(timeout)
        if not answered:
            self._kill(pid)
            assert timeout is not None
            raise _timeout_error(tool, timeout)
        try:
            kind, payload = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            status = self._reap(pid)
            raise ToolProcessDied(f"the tool's process died: {status}") from None
        except MemoryError:
            self._kill(pid)
            raise ToolMemoryExhausted(f"tool {tool.name!r}'s result does not fit in memory") from None
        self._reap(pid)
        if kind == "ok":
            return payload
        if kind == "died":
            raise ToolProcessDied(f"the tool's process died: {payload}")
        if kind == "memory":
            raise ToolMemoryExhausted(f"tool {tool.name!r} ran out of memory")
        if kind == "error":
            raise payload
        type_name, message = payload
        raise _rebuilt(type_name, message)

    @staticmethod
    def _reap(pid: int) -> str:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return "status unknown"
        return _describe(status)

    @classmethod
    def _kill(cls, pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        cls._reap(pid)
