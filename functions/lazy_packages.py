"""Packages whose ``__init__`` imports every submodule, made to import a submodule only when a name of it is used.

Powertools' ``aws_lambda_powertools.event_handler`` imports every resolver it has
(AppSync, which imports ``asyncio``, Bedrock agents, VPC Lattice...) and
``aws_lambda_powertools.utilities.data_classes`` the data classes of some thirty event
sources, whichever one a handler uses. :func:`defer_package_init` puts in
``sys.modules`` a module for such a package that has its path (so its submodules
import as usual) but does not run its ``__init__``: a name the ``__init__`` imports
with a top-level ``from <module> import <name>`` is imported from that module on
first use, a submodule's name imports the submodule, and any other name (or
``dir()``) runs the real ``__init__`` into the module first, so nothing the package
defines is missing, only later.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def _exports(name: str, source: str) -> dict[str, tuple[str, str | None]]:
    """Each name ``__init__`` imports at top level: (module to import, attribute of it; ``None``: the module itself)."""
    found: dict[str, tuple[str, str | None]] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ImportFrom) or node.level > 1:
            continue
        if node.level == 0 and node.module:
            base = node.module
        elif node.level == 1:
            base = f"{name}.{node.module}" if node.module else name
        else:
            continue
        for alias in node.names:
            if alias.name == "*":
                continue
            bound = alias.asname or alias.name
            found[bound] = (f"{name}.{alias.name}", None) if base == name else (base, alias.name)
    return found


class _DeferredPackage(ModuleType):
    """A package module whose names come from their submodules on first use."""

    def __init__(self, name: str, exports: dict[str, tuple[str, str | None]]) -> None:
        super().__init__(name)
        self.__dict__["_deferred_exports"] = exports
        self.__dict__["_deferred_loaded"] = False

    def __getattr__(self, attr: str) -> Any:
        exports: dict[str, tuple[str, str | None]] = self.__dict__["_deferred_exports"]
        if attr in exports:
            module, name = exports[attr]
            imported = importlib.import_module(module)
            value = imported if name is None else getattr(imported, name)
            setattr(self, attr, value)
            return value
        if attr.startswith("__") or self.__dict__["_deferred_loaded"]:
            raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")
        submodule = f"{self.__name__}.{attr}"
        if importlib.util.find_spec(submodule) is not None:
            return importlib.import_module(submodule)
        self._load()
        try:
            return self.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}") from None

    def __dir__(self) -> list[str]:
        self._load()
        return sorted(self.__dict__)

    def _load(self) -> None:
        """Run the package's real ``__init__`` in this module (once)."""
        if self.__dict__["_deferred_loaded"]:
            return
        self.__dict__["_deferred_loaded"] = True
        spec = self.__spec__
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(self)


def defer_package_init(name: str) -> bool:
    """Register ``name`` as a :class:`_DeferredPackage` unless it is imported already; ``True`` if it was registered."""
    if name in sys.modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not a package with an __init__")
    module = _DeferredPackage(name, _exports(name, Path(spec.origin).read_text(encoding="utf-8")))
    module.__spec__ = spec
    module.__file__ = spec.origin
    module.__path__ = list(spec.submodule_search_locations)
    module.__package__ = name
    module.__loader__ = spec.loader
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return True
