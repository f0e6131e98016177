"""Settings every test shares, applied before any handler module is imported.

Powertools reads its namespace and tracing switch when a handler module creates
its Logger, Tracer and Metrics, so these must be in the environment first. The
credentials are fake: no test reaches AWS.
"""

from __future__ import annotations

import os

for key, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "graphflow-test",
    "POWERTOOLS_METRICS_NAMESPACE": "graphflow-test",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
}.items():
    os.environ.setdefault(key, value)
os.environ.pop("AWS_PROFILE", None)
