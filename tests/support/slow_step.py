"""The step handler with a slow start: an invocation whose batch holds a step-1 message waits first.

``SLOW_STEP_SECONDS`` (default 0) is the wait: a stand-in for an execution
environment that a loaded machine leaves without CPU for that long.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from functions.step import app


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    if any(json.loads(r["body"]).get("step") == 1 for r in event.get("Records", [])):
        time.sleep(float(os.environ.get("SLOW_STEP_SECONDS", "0")))
    return app.lambda_handler(event, context)
