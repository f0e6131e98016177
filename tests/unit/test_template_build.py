"""How ``sam build`` builds the artifacts: the Makefile's targets, and what scripts/check_sam_build.py refuses."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from local.resources import load_template

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")
needs_make = pytest.mark.skipif(MAKE is None, reason="no make on PATH")


def _check_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_sam_build", ROOT / "scripts" / "check_sam_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_layer_is_built_by_the_makefile_from_the_repository_root() -> None:
    layer = load_template()["Resources"]["DependenciesLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Metadata"]["ProjectRootDirectory"] == "."
    assert layer["Properties"]["ContentUri"] == "layer/"
    assert (ROOT / "layer" / "requirements.txt").is_file()


def _dry_run(tmp_path: Path, **env: str) -> str:
    """The commands ``make build-DependenciesLayer`` would run, as SAM runs it (ARTIFACTS_DIR set)."""
    assert MAKE is not None
    base = {"PATH": "/usr/bin:/bin", "ARTIFACTS_DIR": str(tmp_path)}
    done = subprocess.run(
        [MAKE, "-n", "--no-print-directory", "build-DependenciesLayer"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@needs_make
@pytest.mark.parametrize(
    ("env", "machine"),
    [
        ({}, "aarch64"),
        ({"GRAPHFLOW_ARCHITECTURE": "arm64"}, "aarch64"),
        ({"GRAPHFLOW_ARCHITECTURE": "x86_64"}, "x86_64"),
    ],
)
def test_the_layer_build_installs_wheels_for_the_architecture_it_is_given(
    tmp_path: Path, env: dict[str, str], machine: str
) -> None:
    commands = _dry_run(tmp_path, **env)
    other = "x86_64" if machine == "aarch64" else "aarch64"
    assert f"--platform manylinux2014_{machine}" in commands
    assert f"--platform manylinux_2_28_{machine}" in commands
    assert f"_{other}" not in commands
    assert "--python-version 3.12" in commands
    assert f'-m compileall -q --invalidation-mode unchecked-hash "{tmp_path}/python"' in commands


@needs_make
def test_the_layer_build_refuses_an_unknown_architecture(tmp_path: Path) -> None:
    assert MAKE is not None
    done = subprocess.run(
        [MAKE, "--no-print-directory", "build-DependenciesLayer"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "ARTIFACTS_DIR": str(tmp_path), "GRAPHFLOW_ARCHITECTURE": "sparc"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "GRAPHFLOW_ARCHITECTURE is 'sparc', not arm64 or x86_64" in done.stderr
    assert list(tmp_path.iterdir()) == []


@needs_make
def test_make_sam_build_passes_one_architecture_to_the_template_the_layer_and_the_check() -> None:
    assert MAKE is not None
    done = subprocess.run(
        [MAKE, "-n", "--no-print-directory", "sam-build", "ARCHITECTURE=x86_64", "PY312=/usr/bin/true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "GRAPHFLOW_ARCHITECTURE=x86_64" in done.stdout
    assert "--parameter-overrides Architecture=x86_64" in done.stdout
    assert "--parameter Architecture=x86_64" in done.stdout


def _build_dir(tmp_path: Path, layer_bytecode: bool) -> Path:
    """A build directory with one function and one layer, all modules compiled except the layer's if asked."""
    build = tmp_path / "build"
    template = {
        "Resources": {
            "Layer": {
                "Type": "AWS::Serverless::LayerVersion",
                "Properties": {"ContentUri": "Layer", "CompatibleArchitectures": ["x86_64"]},
            },
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "Fn",
                    "Handler": "functions.app.handler",
                    "Architectures": ["x86_64"],
                },
            },
        }
    }
    build.mkdir()
    (build / "template.yaml").write_text(json.dumps(template))
    site = build / "Layer" / "python"
    (site / "dep").mkdir(parents=True)
    (site / "dep" / "__init__.py").write_text("VALUE = 1\n")
    (site / "dep-1.0.dist-info").mkdir()
    (site / "dep-1.0.dist-info" / "RECORD").write_text("dep/__init__.py,,\n")
    code = build / "Fn"
    (code / "functions").mkdir(parents=True)
    (code / "functions" / "__init__.py").write_text("")
    (code / "functions" / "app.py").write_text("def handler(event, context):\n    return None\n")
    compile_dirs = [str(code)] + ([str(site)] if layer_bytecode else [])
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", *compile_dirs],
        check=True,
    )
    return build


def test_the_build_check_refuses_a_layer_without_bytecode(tmp_path: Path) -> None:
    check = _check_module()
    tag = sys.implementation.cache_tag
    problems = check.check(_build_dir(tmp_path, layer_bytecode=False), sys.executable)
    assert f"Layer: 1 modules without {tag} bytecode: ['dep/__init__.py']" in problems


def test_the_build_check_takes_a_compiled_layer(tmp_path: Path) -> None:
    check = _check_module()
    problems = check.check(_build_dir(tmp_path, layer_bytecode=True), sys.executable)
    assert not [p for p in problems if p.startswith("Layer:") and "bytecode" in p]
