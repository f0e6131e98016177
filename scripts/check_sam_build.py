"""Check what ``sam build`` produced, before anything is deployed.

* every function's artifact holds the packages ``engine`` and ``functions`` and nothing
  else (no tests or virtualenvs), and its handler module is there;
* every module of an artifact has its bytecode, compiled for the functions' Python and
  never checked against the source (unchecked-hash ``.pyc``: Lambda cannot write a stale
  one anew), and there is no other bytecode;
* the layer holds the dependencies, and its compiled extensions are built for the
  functions' architecture (arm64: aarch64 ELF files);
* every module of the layer has its bytecode too, checked as the artifacts' is (SAM's
  Python builder ships none: each cold start compiled what it imported);
* every handler module imports with only the artifact, the layer and the standard
  library on ``sys.path`` (``python -I -S``), under the template's environment names.

Parameters take their defaults unless ``--parameter NAME=VALUE`` gives the value the build
used (``make sam-build-local`` builds with ``Architecture=x86_64``).

The layer is built for the Architecture parameter (arm64 by default); on another host its compiled extensions cannot load, so
for those distributions the same version is installed for the host into a temporary
directory placed ahead of the layer (pure-Python code still comes from the layer).

Run with SAM's virtualenv (it has PyYAML), after ``sam build``::

    .venv-sam/bin/python scripts/check_sam_build.py --python python3.12 [--parameter Architecture=x86_64] [BUILD_DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ALLOWED_TOP_LEVEL = {"engine", "functions"}
REQUIRED_DISTRIBUTIONS = {"pydantic", "pydantic_core", "aws_lambda_powertools", "aws_xray_sdk", "boto3"}
ELF_MACHINES = {62: "x86_64", 183: "arm64"}  # e_machine: EM_X86_64, EM_AARCH64
PIP_INSTALL = (
    "-m",
    "pip",
    "install",
    "--quiet",
    "--disable-pip-version-check",
    "--no-deps",
    "--only-binary=:all:",
)
LAMBDA_LIMIT_BYTES = 250 * 1024 * 1024  # unzipped function + layers


class _Loader(yaml.SafeLoader):
    """Keeps CloudFormation's short tags as data: ``!Ref X`` becomes ``{"Ref": "X"}``."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: Any) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


_Loader.add_multi_constructor("!", _tag)


def _plain(value: Any, parameters: dict[str, Any], conditions: dict[str, Any]) -> Any:
    """A value with parameter ``Ref`` s, ``If`` and ``Equals`` resolved at the defaults; ``None`` if it cannot be."""
    if isinstance(value, str | int | float | bool):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((tag, arg),) = value.items()
    tag = tag.removeprefix("Fn::")
    if tag == "Ref":
        return parameters.get(arg, {}).get("Default")
    if tag == "Equals" and isinstance(arg, list) and len(arg) == 2:
        left, right = (_plain(v, parameters, conditions) for v in arg)
        return None if left is None or right is None else str(left) == str(right)
    if tag == "If" and isinstance(arg, list) and len(arg) == 3:
        holds = _plain(conditions.get(arg[0]), parameters, conditions)
        return None if holds is None else _plain(arg[1] if holds else arg[2], parameters, conditions)
    return None


def _env_value(name: str, value: Any, parameters: dict[str, Any], conditions: dict[str, Any]) -> str:
    """A variable's value at the parameters' defaults, or a placeholder where it names a resource."""
    plain = _plain(value, parameters, conditions)
    return f"sam-build-check-{name.lower()}" if plain is None else str(plain)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _elf_machine(path: Path) -> str | None:
    with path.open("rb") as fh:
        header = fh.read(20)
    if header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return ELF_MACHINES.get(machine, str(machine))


def _distributions(site: Path) -> dict[str, tuple[str, list[str]]]:
    """name (normalised) -> (version, files listed in RECORD)."""
    found: dict[str, tuple[str, list[str]]] = {}
    for info in site.glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        record = info / "RECORD"
        files = [line.split(",", 1)[0] for line in record.read_text().splitlines()] if record.exists() else []
        found[name.lower().replace("-", "_").replace(".", "_")] = (version, files)
    return found


def _cache_tag(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import sys; print(sys.implementation.cache_tag)"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


_UNCHECKED_HASH = 0b01  # the flags word of a .pyc (PEP 552): hash-based, not checked against the source


def _bytecode_problems(code: Path, tag: str) -> list[str]:
    """What is wrong with the bytecode of ``code``: modules without it, bytecode that is checked or not for ``tag``."""
    missing, checked = [], []
    for source in sorted(code.rglob("*.py")):
        pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        if not pyc.is_file():
            missing.append(str(source.relative_to(code)))
        elif int.from_bytes(pyc.read_bytes()[4:8], "little") != _UNCHECKED_HASH:
            checked.append(str(pyc.relative_to(code)))
    foreign = [str(p.relative_to(code)) for p in code.rglob("*.py[co]") if p.name.split(".")[-2] != tag]
    problems = []
    if missing:
        problems.append(f"{len(missing)} modules without {tag} bytecode: {missing[:3]}")
    if checked:
        problems.append(f"{len(checked)} .pyc files are not unchecked-hash: {checked[:3]}")
    if foreign:
        problems.append(f"bytecode for another Python: {foreign[:3]}")
    return problems


def _host_machine(python: str) -> str:
    out = subprocess.run(
        [python, "-c", "import platform; print(platform.machine())"],
        check=True,
        capture_output=True,
        text=True,
    )
    machine = out.stdout.strip()
    return {"aarch64": "arm64", "amd64": "x86_64"}.get(machine.lower(), machine)


def check(build_dir: Path, python: str, overrides: dict[str, str] | None = None) -> list[str]:
    """The problems found in ``build_dir`` (empty: all good), built with the parameter values ``overrides``."""
    template = yaml.load((build_dir / "template.yaml").read_text(), Loader=_Loader)
    resources: dict[str, Any] = template["Resources"]
    globals_fn: dict[str, Any] = (template.get("Globals") or {}).get("Function") or {}
    parameters: dict[str, Any] = {
        name: {**spec, "Default": (overrides or {}).get(name, spec.get("Default"))}
        for name, spec in (template.get("Parameters") or {}).items()
    }
    variables: dict[str, Any] = (globals_fn.get("Environment") or {}).get("Variables") or {}
    conditions: dict[str, Any] = template.get("Conditions") or {}
    environment = {name: _env_value(name, value, parameters, conditions) for name, value in variables.items()}

    layers = {
        name: build_dir / res["Properties"]["ContentUri"] / "python"
        for name, res in resources.items()
        if res["Type"] == "AWS::Serverless::LayerVersion"
    }
    functions = {
        name: res["Properties"]
        for name, res in resources.items()
        if res["Type"] == "AWS::Serverless::Function"
    }
    if not layers or not functions:
        return [f"no functions or no layers in {build_dir / 'template.yaml'}"]
    archs = {
        _plain(
            (res.get("Metadata") or {}).get("BuildArchitecture")
            or (res["Properties"].get("CompatibleArchitectures") or ["x86_64"])[0],
            parameters,
            conditions,
        )
        for res in resources.values()
        if res["Type"] == "AWS::Serverless::LayerVersion"
    }
    if len(archs) != 1:
        return [f"layers built for several architectures: {sorted(archs)}"]
    arch = archs.pop()

    with tempfile.TemporaryDirectory(prefix="sam-check-") as tmp:
        return _check(
            build_dir, python, str(arch), Path(tmp), layers, functions, globals_fn, environment, parameters
        )


def _check(
    build_dir: Path,
    python: str,
    arch: str,
    shim: Path,
    layers: dict[str, Path],
    functions: dict[str, dict[str, Any]],
    globals_fn: dict[str, Any],
    environment: dict[str, str],
    parameters: dict[str, Any],
) -> list[str]:
    problems: list[str] = []
    host = _host_machine(python)
    tag = _cache_tag(python)
    for name, site in layers.items():
        if not site.is_dir():
            problems.append(f"{name}: {site} is missing")
            continue
        dists = _distributions(site)
        missing = REQUIRED_DISTRIBUTIONS - dists.keys()
        if missing:
            problems.append(f"{name}: missing distributions {sorted(missing)}")
        for dist, (version, files) in sorted(dists.items()):
            machines = {
                machine
                for f in files
                if f.endswith(".so") and (site / f).exists() and (machine := _elf_machine(site / f))
            }
            wrong = machines - {arch}
            if wrong:
                problems.append(f"{name}: {dist} {version} has extensions for {sorted(wrong)}, not {arch}")
            if machines and host not in machines:
                pip = subprocess.run(
                    [python, *PIP_INSTALL, "--target", str(shim), f"{dist}=={version}"],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if pip.returncode != 0:
                    problems.append(f"{name}: cannot install {dist}=={version} for {host}:\n{pip.stderr}")
        problems.extend(f"{name}: {problem}" for problem in _bytecode_problems(site, tag))
        compiled = sum(1 for _ in site.rglob(f"*.{tag}.pyc"))
        sources = sum(1 for _ in site.rglob("*.py"))
        print(
            f"{name}: {len(dists)} distributions, {_size(site) / 2**20:.1f} MiB, {compiled}/{sources} modules compiled"
        )

    layer_paths = [str(p) for p in layers.values()]
    layer_bytes = sum(_size(p) for p in layers.values() if p.is_dir())
    for name, props in functions.items():
        code = build_dir / props["CodeUri"]
        handler = str(props.get("Handler") or globals_fn.get("Handler"))
        module, _, attr = handler.rpartition(".")
        fn_arch = _plain(
            (props.get("Architectures") or globals_fn.get("Architectures") or ["x86_64"])[0], parameters, {}
        )
        if fn_arch != arch:
            problems.append(f"{name}: architecture {fn_arch}, its layer is built for {arch}")
        if not code.is_dir():
            problems.append(f"{name}: {code} is missing")
            continue
        extra = {p.name for p in code.iterdir()} - ALLOWED_TOP_LEVEL
        if extra:
            problems.append(f"{name}: unexpected entries in the artifact: {sorted(extra)}")
        problems.extend(f"{name}: {problem}" for problem in _bytecode_problems(code, tag))
        if not (code / (module.replace(".", "/") + ".py")).is_file():
            problems.append(f"{name}: handler module {module} is not in the artifact")
            continue
        size = _size(code)
        if size + layer_bytes > LAMBDA_LIMIT_BYTES:
            problems.append(f"{name}: {(size + layer_bytes) / 2**20:.0f} MiB unzipped with its layers")
        probe = (
            "import importlib, json, sys; "
            f"sys.path[:0] = {json.dumps([str(code), str(shim), *layer_paths])}; "
            f"m = importlib.import_module({module!r}); "
            f"assert callable(getattr(m, {attr!r})), 'no handler {attr}'; "
            "import pydantic, engine; "
            "print(pydantic.VERSION)"
        )
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            **environment,
        }
        result = subprocess.run(
            [python, "-I", "-S", "-B", "-c", probe], capture_output=True, text=True, env=env, check=False
        )
        if result.returncode != 0:
            problems.append(f"{name}: importing {module} failed:\n{result.stderr.strip()}")
        else:
            print(f"{name}: {handler} imports (pydantic {result.stdout.split()[0]}), {size / 2**10:.0f} KiB")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", nargs="?", default=".aws-sam/build", type=Path)
    parser.add_argument("--python", default="python3.12", help="the functions' Python (runtime python3.12)")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template parameter the build overrode (sam build --parameter-overrides), e.g. Architecture=x86_64",
    )
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.parameter)
    problems = check(args.build_dir, args.python, overrides)
    for problem in problems:
        print(f"sam build check: {problem}", file=sys.stderr)
    if not problems:
        print("sam build check: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
