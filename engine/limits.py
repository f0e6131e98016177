"""Every size and depth limit of the engine and the API, and the checks that share them.

The README's Limits section has the one table of these limits: what each
bounds, what happens when it is exceeded and where it is enforced. A check here raises
:class:`~engine.errors.BadRequestError` or :class:`~engine.errors.PayloadTooLargeError`
(400 / 413 at the API) or returns a problem text for the caller to report.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from engine.errors import BadRequestError, StateTooLargeError

MAX_BODY_BYTES = 1024 * 1024
"""Request body size (``MAX_BODY_BYTES`` in the environment overrides it)."""
MAX_BODY_DEPTH = 100
"""Nesting of arrays and objects in a request body, checked before it is parsed."""
MAX_STATE_DEPTH = 64
"""Nesting of a run's state (``initial_state`` and every tool result)."""
MAX_CONDITION_DEPTH = 32
"""Nesting of ``all``/``any``/``not`` in one edge condition."""
MAX_GRAPH_DEPTH = 64
"""Nesting of a graph definition (room for conditions :data:`MAX_CONDITION_DEPTH` deep)."""
MAX_PATTERN_LENGTH = 1000
"""Characters of a ``matches`` pattern."""
MAX_NODES = 500
"""Nodes in one graph."""
MAX_RULES_PER_EDGE = 100
"""Rules in one node's list of conditional edges."""
MAX_STEPS_CEILING = 100_000
"""The largest ``max_steps`` a graph may set."""
MAX_PARALLEL_BRANCHES = 32
"""Branches of one ``parallel`` edge."""
MAX_MAP_CONCURRENCY = 100
"""The largest ``max_concurrency`` a map may set: items of one map in flight at once."""
MAX_MAP_ITEMS = 1000
"""Items one map runs; a run whose list holds more when the map starts fails there."""
MAX_WAIT_SECONDS = 2 * 366 * 86_400
"""The longest a wait node or a callback waits: two years."""
MAX_NODE_PARAMS_BYTES = 16 * 1024
"""The most JSON one node's ``params`` may hold."""
MAX_STATE_BYTES = 32 * 1024 * 1024
"""The JSON text of a run's whole state."""
MAX_STATE_KEYS = 256
"""Top-level keys of a run's state: with their names and small values they must fit one store item."""
MAX_STATE_KEY_LENGTH = 256
"""Characters of one top-level state key."""
MAX_LOG_MESSAGE = 500
"""Characters of a log record's message; longer ones are cut and end with :data:`TRUNCATED`."""
MAX_LOG_DATA_BYTES = 16 * 1024
"""JSON text of a log record's ``data``; larger data is replaced by a truncation marker."""
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 - 64 * 1024
"""A Lambda response body (6 MB, less room for the envelope)."""
MAX_INT_DIGITS = 4300
"""Digits of a JSON integer (Python's own limit for converting text to int)."""
TRUNCATED = "…[truncated]"


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadRequestError(f"a JSON integer has {len(text)} digits; the limit is {MAX_INT_DIGITS}")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BadRequestError(f"the JSON number {text[:40]} is too large for a double")
    return value


def _parse_constant(text: str) -> Any:
    raise BadRequestError(f"{text} is not JSON")


NUMBER_HOOKS: dict[str, Any] = {
    "parse_int": _parse_int,
    "parse_float": _parse_float,
    "parse_constant": _parse_constant,
}
"""``json.loads`` keywords that refuse what JSON cannot carry: infinities, NaN, integers past :data:`MAX_INT_DIGITS`."""


def json_depth(value: Any) -> int:
    """How deep arrays and objects nest in ``value`` (a scalar is 0); iterative, so any depth is safe."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def text_depth(text: str) -> int:
    """How deep arrays and objects nest in JSON ``text``, read without parsing it (strings are skipped)."""
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def key_problem(key: Any) -> str | None:
    """Why ``key`` cannot be a state key (empty, too long, control or lone surrogate characters), or ``None``."""
    if not isinstance(key, str):
        return f"state keys must be strings, got {type(key).__name__}"
    if not key:
        return "a state key cannot be empty"
    if len(key) > MAX_STATE_KEY_LENGTH:
        return f"state key {key[:40]!r}... is {len(key)} characters; the limit is {MAX_STATE_KEY_LENGTH}"
    for char in key:
        category = unicodedata.category(char)
        if category == "Cs":
            return f"state key {key!r} holds a lone surrogate (U+{ord(char):04X})"
        if category == "Cc":
            return f"state key {key!r} holds the control character U+{ord(char):04X}"
    return None


def has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def state_problem(state: dict[str, Any], where: str) -> tuple[str, int] | None:
    """What makes ``state`` unusable as a run's state: ``(message, size)``, or ``None``.

    ``size`` is the JSON size in bytes when that is the problem, else 0.
    """
    if len(state) > MAX_STATE_KEYS:
        return f"{where} has {len(state)} top-level keys; the limit is {MAX_STATE_KEYS}", 0
    for key in state:
        problem = key_problem(key)
        if problem is not None:
            return f"{where}: {problem}", 0
    depth = json_depth(state)
    if depth > MAX_STATE_DEPTH:
        return f"{where} nests {depth} levels deep; the limit is {MAX_STATE_DEPTH}", 0
    try:
        size = len(
            json.dumps(state, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
        )
    except UnicodeEncodeError:
        return f"{where} holds a string with a lone surrogate", 0
    except ValueError:
        return f"{where} holds a number JSON cannot represent (NaN or infinity)", 0
    if size > MAX_STATE_BYTES:
        return f"{where} is {size} bytes as JSON; the limit is {MAX_STATE_BYTES}", size
    return None


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8"))


def entry_bytes(key: str, value: Any) -> int:
    """What one top-level entry adds to the state's compact JSON: its key, its value, ``:`` and ``,``."""
    return _json_bytes(key) + _json_bytes(value) + 2


def _total(entries: int, keys: int) -> int:
    """The size of the state's compact JSON from the sum of its entries: braces, less the last comma."""
    return entries + 2 - (1 if keys else 0)


def _entries(total: int, keys: int) -> int:
    return total - 2 + (1 if keys else 0)


def state_bytes(state: Mapping[str, Any]) -> int:
    """The size in UTF-8 bytes of the state as compact JSON (``separators=(",", ":")``)."""
    return _total(sum(entry_bytes(key, state[key]) for key in state), len(state))


def updated_state_bytes(
    state: Mapping[str, Any], updates: dict[str, Any], known_bytes: int | None, where: str
) -> int:
    """The size of ``state`` once ``updates`` are merged, reading none of the values they replace.

    The values ``state`` already holds passed these checks when they were stored,
    so only the updates are checked: their keys, the number of keys, and the new
    total, from ``known_bytes`` (the run's last count). A replaced value's size
    comes from the state's ``json_sizes()`` where it has one (a lazily read
    state, :class:`engine.lazystate.LazyState`, knows them from its store), else
    from the value. Raises :class:`StateTooLargeError` or ``ValueError``.
    """
    added = [key for key in updates if key not in state]
    for key in added:
        problem = key_problem(key)
        if problem is not None:
            raise ValueError(f"{where}: {problem}")
    keys = len(state) + len(added)
    if keys > MAX_STATE_KEYS:
        raise ValueError(f"{where} has {keys} top-level keys; the limit is {MAX_STATE_KEYS}")
    sized = getattr(state, "json_sizes", None)
    stored: dict[str, int] = sized() if sized is not None else {}

    def old_entry(key: str) -> int:
        size = stored.get(key)
        return _json_bytes(key) + size + 2 if size is not None else entry_bytes(key, state[key])

    try:
        if known_bytes is not None:
            entries = _entries(known_bytes, len(state))
        else:
            entries = sum(old_entry(key) for key in state)
        for key, value in updates.items():
            if key in state:
                entries -= old_entry(key)
            entries += entry_bytes(key, value)
    except UnicodeEncodeError:
        raise ValueError(f"{where} holds a string with a lone surrogate") from None
    size = _total(entries, keys)
    if size > MAX_STATE_BYTES:
        raise StateTooLargeError(
            f"{where} is {size} bytes as JSON; the limit is {MAX_STATE_BYTES}", size=size
        )
    return size


def state_problem_after(
    state: Mapping[str, Any], updates: dict[str, Any], where: str
) -> tuple[str, int] | None:
    """:func:`updated_state_bytes` as a problem ``(message, size)``, or ``None`` if the merge is fine."""
    try:
        updated_state_bytes(state, updates, None, where)
    except StateTooLargeError as exc:
        return str(exc), int(exc.details.get("size", 0))
    except ValueError as exc:
        return str(exc), 0
    return None


def check_state(state: dict[str, Any], where: str = "initial_state") -> None:
    """Raise :class:`StateTooLargeError` (too large) or :class:`BadRequestError` if ``state`` is unusable."""
    found = state_problem(state, where)
    if found is None:
        return
    message, size = found
    if size:
        raise StateTooLargeError(message, size=size, limit=MAX_STATE_BYTES)
    raise BadRequestError(message)


def truncate_message(message: str) -> str:
    if len(message) <= MAX_LOG_MESSAGE:
        return message
    return message[: MAX_LOG_MESSAGE - len(TRUNCATED)] + TRUNCATED


def truncate_data(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """``data`` if its JSON fits :data:`MAX_LOG_DATA_BYTES`, else a marker with its size and a prefix of it."""
    if data is None:
        return None
    text = json.dumps(data, ensure_ascii=False, default=str)
    size = len(text.encode("utf-8", "replace"))
    if size <= MAX_LOG_DATA_BYTES:
        return data
    return {"truncated": True, "bytes": size, "preview": text[:1000] + TRUNCATED}
