"""A run's state that loads a value the first time it is read: :class:`LazyState`.

A store whose values live apart from the run (``engine.aws.state``) hands the
run's state out as a ``LazyState``: its keys are known at once, each value is
fetched and decoded on first access, and everything that hands out or compares
all values (``items``, ``values``, ``==``, ``dict(state)``, ``{**state}``,
``json.dumps``, pickling, ``copy.deepcopy``) loads the missing ones first, in
one call of the loader. ``len``, ``in``, ``keys`` and iteration over the keys
load nothing. :meth:`json_sizes` gives the size of each value as the store
measured it, so a size check needs no value (``engine.limits.updated_state_bytes``).

Values it loaded are its own (the loader decodes a fresh object per call);
``copy`` shares what is loaded so far, as ``dict.copy`` does. Code that reads
the raw dict from C without calling a method (pydantic's validator and
serializer do) sees placeholders: pass ``dict(state.items())`` there (one load;
``dict(state)`` and ``{**state}`` are right too, but load key by key).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from engine.snapshots import ReadThroughState

Loader = Callable[[list[str]], dict[str, Any]]
"""Fetches and decodes the values of the given keys."""

_MISSING: Any = object()


class _Unloaded:
    __slots__ = ()


_UNLOADED = _Unloaded()


def json_size(value: Any) -> int:
    """The UTF-8 size of ``value``'s compact JSON text (how stores measure a value)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return len(json.dumps(value, separators=(",", ":")).encode())


class LazyState(ReadThroughState):
    """A state whose values are loaded by ``loader`` when first read (see the module docstring).

    Args:
        keys: the state's keys.
        loader: returns the values of the keys it is given.
        sizes: the JSON size of each stored value, where the store knows it.
        loaded: values already at hand (they are not loaded again).
    """

    __slots__ = ("_loader", "_sizes", "_stored")

    def __init__(
        self,
        keys: Iterable[str],
        loader: Loader,
        sizes: Mapping[str, int] | None = None,
        loaded: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(dict.fromkeys(keys, _UNLOADED))
        self._loader = loader
        self._sizes = dict(sizes or {})
        self._stored: dict[str, Any] = {}
        for key, value in (loaded or {}).items():
            dict.__setitem__(self, key, value)
            self._stored[key] = value

    def unloaded(self) -> list[str]:
        """The keys whose values have not been loaded."""
        return [key for key, value in dict.items(self) if value is _UNLOADED]

    def _load(self, keys: list[str]) -> None:
        if not keys:
            return
        for key, value in self._loader(keys).items():
            if dict.get(self, key, _MISSING) is _UNLOADED:
                dict.__setitem__(self, key, value)
                self._stored[key] = value

    def _read(self, key: str, raw: Any) -> Any:
        if raw is _UNLOADED:
            self._load([key])
            return dict.__getitem__(self, key)
        return raw

    def _read_all(self) -> None:
        self._load(self.unloaded())

    def json_sizes(self) -> dict[str, int]:
        """Each key's value size as compact JSON: the store's figure for values as stored, else measured."""
        out: dict[str, int] = {}
        for key, value in dict.items(self):
            size = self._sizes.get(key)
            if size is not None and (value is _UNLOADED or value is self._stored.get(key, _MISSING)):
                out[key] = size
                continue
            out[key] = json_size(self[key] if value is _UNLOADED else value)
        return out

    def copy(self) -> LazyState:
        """A state with the same keys and loader that shares the values loaded so far."""
        state = LazyState.__new__(LazyState)
        dict.update(state, dict.items(self))
        state._loader = self._loader
        state._sizes = self._sizes
        state._stored = dict(self._stored)
        return state

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        import copy

        return {key: copy.deepcopy(value, memo) for key, value in self.items()}

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self.items()),))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, dict):
            return NotImplemented
        self._read_all()
        if isinstance(other, LazyState):
            other._read_all()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]  # a dict: unhashable

    def __repr__(self) -> str:
        self._read_all()
        return dict.__repr__(self)
