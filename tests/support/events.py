"""The sample events in ``events/``: the same files ``sam local invoke -e`` takes."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[2] / "events"
CALLER = "arn:aws:iam::123456789012:user/alice"
"""The IAM caller every sample API and WebSocket event carries."""


@cache
def _read(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())  # type: ignore[no-any-return]


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    """A fresh copy of ``events/<name>`` with top-level keys replaced by ``overrides``."""
    event = copy.deepcopy(_read(name if name.endswith(".json") else f"{name}.json"))
    event.update(overrides)
    return event
