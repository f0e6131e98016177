"""Hints for error messages: the closest valid names to a misspelt one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

TOOLS_POINTER = "GET /tools (or wf tools) lists every tool"


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` of ``choices`` that look like ``name``, best first (``difflib.get_close_matches``)."""
    return difflib.get_close_matches(name, list(choices), n=n, cutoff=0.6)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'a' or 'b'?"`` for the closest choices, or ``""`` when none is close."""
    matches = closest(name, choices)
    if not matches:
        return ""
    quoted = [repr(m) for m in matches]
    listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f"; did you mean {listed}?"


def unknown_tool(name: str, choices: Iterable[str]) -> str:
    """The message for a tool name that is not registered: the closest names and where to list them all."""
    return f"unknown tool {name!r}{with_pointer(did_you_mean(name, choices))}"


def with_pointer(hint: str) -> str:
    """``hint`` followed by where to list the tools."""
    return f"{hint} {TOOLS_POINTER}" if hint else f"; {TOOLS_POINTER}"
