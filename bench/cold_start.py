"""Cold start: how long each handler module takes to import, against ``import boto3`` alone.

Each measurement is a fresh interpreter (``python -c``) timing only the import,
so interpreter start-up is not counted. The interpreter runs with ``-S`` and
the repository and site-packages on ``PYTHONPATH``, as Lambda puts the code and
the layer on ``sys.path``: the editable install's import hook (about 9 ms at
the first import of our packages) is not something a Lambda pays. Targets (DESIGN.md): step <= 1.25x and
API <= 1.4x the time of ``import boto3``.

The handlers import boto3 on their first request, not at import, so the table
also shows ``handler + boto3``: the imports a cold start pays before its first
response, which is the fairer figure against the target. Tracing is off, as
the template deploys it by default (its X-Ray SDK import is measured apart).

Usage: ``.venv/bin/python bench/cold_start.py [--repeat 15]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = {
    "boto3": "boto3",
    "step": "functions.step.app",
    "step + boto3": "functions.step.app, boto3",
    "api": "functions.api.app",
    "api + boto3": "functions.api.app, boto3",
    "ws + boto3": "functions.ws.app, boto3",
    "dlq + boto3": "functions.dlq.app, boto3",
    "x-ray sdk + boto3": "aws_xray_sdk.core, boto3",
}
TARGETS = {"step": 1.25, "step + boto3": 1.25, "api": 1.4, "api + boto3": 1.4}
SNIPPET = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def measure(module: str, repeat: int) -> list[float]:
    site_packages = sysconfig.get_paths()["purelib"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), site_packages]),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONDONTWRITEBYTECODE": "",
    }
    times = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-S", "-c", SNIPPET.format(module=module)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        times.append(float(out.stdout.strip()) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    for module in MODULES.values():
        measure(module, 1)
    samples = {name: measure(module, args.repeat) for name, module in MODULES.items()}
    medians = {name: statistics.median(times) for name, times in samples.items()}
    best = {name: min(times) for name, times in samples.items()}
    base = medians["boto3"]
    print(f"{'module':<20}{'median ms':>12}{'x boto3':>10}{'target':>8}")
    for name, ms in medians.items():
        target = TARGETS.get(name)
        ratio = ms / base
        verdict = "" if target is None else ("ok" if ratio <= target else "MISS")
        print(f"{name:<20}{ms:>12.1f}{ratio:>10.2f}{(f'{target:.2f}' if target else ''):>8} {verdict}")
    print(f"best of {args.repeat}: " + ", ".join(f"{k} {v / best['boto3']:.2f}x" for k, v in best.items()))
    print(
        json.dumps(
            {"median_ms": medians, "best_ms": best, "ratio": {k: v / base for k, v in medians.items()}}
        )
    )


if __name__ == "__main__":
    main()
