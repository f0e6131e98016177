"""``.local-stack/stack.json``: where a running ``python -m local.stack`` (``make dev``) can be found.

The file holds ``{"http_url", "ws_url", "moto_url", "pid", "started_at"}``
(``started_at`` in ISO 8601, UTC). It lives at the repository root whatever the
working directory, is written once the stack serves, and is removed when it stops
cleanly; :func:`read` ignores a file whose process is gone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STATE_FILE = ROOT / ".local-stack" / "stack.json"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write(info: dict[str, Any], path: Path = STATE_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(info, indent=2) + "\n")
    temporary.replace(path)


def read(path: Path = STATE_FILE) -> dict[str, Any] | None:
    """The running stack's URLs, or ``None`` if no stack is running."""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("pid"), int) or not pid_alive(info["pid"]):
        return None
    return info


def remove(path: Path = STATE_FILE, pid: int | None = None) -> None:
    """Delete the file if it belongs to ``pid`` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(info, dict) and info.get("pid") == pid:
        path.unlink(missing_ok=True)
