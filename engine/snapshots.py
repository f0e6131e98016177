"""Copies of JSON-like state: :func:`fresh` copies a value, :class:`StateView` copies a state lazily, per key.

:class:`ReadThroughState` is what :class:`StateView` and :class:`engine.lazystate.LazyState` share.
"""

from __future__ import annotations

import copy
from _collections_abc import dict_items, dict_values
from typing import Any, Self

_ATOMS = frozenset({str, int, float, bool, type(None)})
_MISSING: Any = object()


def fresh(value: Any) -> Any:
    """A copy of JSON-like data that shares nothing mutable with ``value``.

    Faster than :func:`copy.deepcopy` for the dicts, lists and scalars a state is
    made of; anything else is deep-copied.
    """
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:
        return {k: v if type(v) in _ATOMS else fresh(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _ATOMS else fresh(v) for v in value]
    return copy.deepcopy(value)


class ReadThroughState(dict[str, Any]):
    """A dict whose values pass through :meth:`_read` whenever they are handed out.

    The subclasses decide what reading does (copy a shared snapshot value, load
    a value from a store). Everything that hands values out goes through it:
    ``state[key]``, ``get``, ``pop``, ``setdefault``, ``items``, ``values``, and
    what CPython builds on them (``dict(state)``, ``{**state}``, ``update``,
    ``state | other``).
    """

    __slots__ = ()

    def _read(self, key: str, raw: Any) -> Any:
        """The value to hand out for ``key``, whose stored value is ``raw``."""
        raise NotImplementedError

    def _read_all(self) -> None:
        """Make every stored value one that may be handed out."""
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self._read(key, dict.__getitem__(self, key))

    def __iter__(self) -> Any:
        # Defined so that CPython merges this into another dict (``dict(state)``, ``{**state}``,
        # ``update``) through ``keys`` and ``__getitem__``, not by its raw values.
        return dict.__iter__(self)

    def get(self, key: str, default: Any = None) -> Any:
        raw = dict.get(self, key, _MISSING)
        return default if raw is _MISSING else self._read(key, raw)

    def items(self) -> dict_items[str, Any]:
        self._read_all()
        return dict.items(self)

    def values(self) -> dict_values[str, Any]:
        self._read_all()
        return dict.values(self)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self[key]
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[str, Any]:
        self._read_all()
        return dict.popitem(self)

    def setdefault(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else dict.setdefault(self, key, default)

    def copy(self) -> Self:
        raise NotImplementedError

    def __or__(self, other: Any) -> Self:  # type: ignore[override]
        if not isinstance(other, dict):
            return NotImplemented
        state = self.copy()
        state.update(other)
        return state

    def __copy__(self) -> Self:
        return self.copy()


class StateView(ReadThroughState):
    """A state read from a store that keeps its values as snapshots: a dict that copies a value when it is read.

    It starts out holding the snapshot's own values, and ``shared`` (the
    snapshot, which its owner never changes) says which ones they are. Reading a
    key (``view[key]``, ``get``, ``pop``, ``setdefault``, ``items``, ``values``,
    and what is built on them: ``dict(view)``, ``{**view}``, ``view | other``,
    ``json.dumps``) first replaces a snapshot value by a :func:`fresh` copy, once
    per key; so a reader pays for the keys it touches, and whatever it does to
    what it got, the snapshot stays as it was. Values it sets are its own and
    are not copied. ``==``, ``repr`` and pydantic's serializer read the values
    without handing them out.
    """

    __slots__ = ("_shared",)

    def __init__(self, shared: dict[str, Any]) -> None:
        super().__init__(shared)
        self._shared = shared

    def _read(self, key: str, raw: Any) -> Any:
        if type(raw) in _ATOMS or raw is not self._shared.get(key, _MISSING):
            return raw
        value = fresh(raw)
        dict.__setitem__(self, key, value)
        return value

    def _read_all(self) -> None:
        for key, value in dict.items(self):
            self._read(key, value)

    def copy(self) -> StateView:
        """A view of the same snapshot that shares this view's values, as ``dict.copy`` does."""
        view = StateView.__new__(StateView)
        view._shared = self._shared
        dict.update(view, dict.items(self))
        return view

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return {key: fresh(value) for key, value in dict.items(self)}

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))
