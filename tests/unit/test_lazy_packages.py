"""functions.lazy_packages: a package's names from their submodules on first use, the rest from its real __init__."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from functions.lazy_packages import defer_package_init

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package ``lazypkg`` whose ``__init__`` imports from two submodules and defines a name of its own."""
    root = tmp_path / "lazypkg"
    root.mkdir()
    (root / "__init__.py").write_text(
        textwrap.dedent(
            """
            from lazypkg.alpha import ALPHA
            from .beta import BETA as RENAMED
            from . import gamma
            OWN = ALPHA + "-own"
            """
        )
    )
    (root / "alpha.py").write_text("ALPHA = 'alpha'\n")
    (root / "beta.py").write_text("BETA = 'beta'\n")
    (root / "gamma.py").write_text("GAMMA = 'gamma'\n")
    (root / "delta.py").write_text("DELTA = 'delta'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lazypkg"
    for name in [m for m in sys.modules if m == "lazypkg" or m.startswith("lazypkg.")]:
        del sys.modules[name]


def loaded(package: str) -> set[str]:
    return {m.removeprefix(f"{package}.") for m in sys.modules if m.startswith(f"{package}.")}


def test_a_name_is_imported_from_its_submodule_only_when_used(package: str) -> None:
    assert defer_package_init(package)
    import lazypkg

    assert loaded(package) == set()
    assert lazypkg.ALPHA == "alpha"
    assert loaded(package) == {"alpha"}
    assert lazypkg.RENAMED == "beta"
    assert lazypkg.gamma.GAMMA == "gamma"
    assert loaded(package) == {"alpha", "beta", "gamma"}


def test_from_imports_of_names_and_submodules_import_only_those(package: str) -> None:
    defer_package_init(package)
    from lazypkg import RENAMED, delta

    assert (RENAMED, delta.DELTA) == ("beta", "delta")
    assert loaded(package) == {"beta", "delta"}


def test_a_name_the_init_defines_itself_runs_the_real_init(package: str) -> None:
    defer_package_init(package)
    import lazypkg

    assert lazypkg.OWN == "alpha-own"
    assert loaded(package) == {"alpha", "beta", "gamma"}
    with pytest.raises(AttributeError, match="no attribute 'MISSING'"):
        _ = lazypkg.MISSING  # type: ignore[attr-defined]


def test_dir_lists_every_name_of_the_package(package: str) -> None:
    defer_package_init(package)
    import lazypkg

    assert {"ALPHA", "RENAMED", "gamma", "OWN"} <= set(dir(lazypkg))


def test_a_package_imported_already_is_left_as_it_is(package: str) -> None:
    import lazypkg

    assert not defer_package_init(package)
    assert sys.modules[package] is lazypkg
    with pytest.raises(ImportError, match="not a package"):
        defer_package_init("lazypkg.delta")


def test_the_powertools_packages_give_the_names_their_init_exports_and_the_api_skips_the_rest() -> None:
    code = textwrap.dedent(
        """
        import importlib, sys
        import functions.api.app
        deferred = ("aws_lambda_powertools.event_handler", "aws_lambda_powertools.utilities.data_classes")
        before = sorted(m for m in sys.modules if m == "asyncio" or m.endswith(".appsync") or "kafka" in m)
        for name in deferred:
            module = sys.modules[name]
            assert type(module).__name__ == "_DeferredPackage", type(module)
            lazy = {attr: getattr(module, attr) for attr in module._deferred_exports}
            module._load()
            assert module.__all__ and set(module.__all__) <= set(lazy), name
            for attr in module.__all__:
                assert getattr(module, attr) is lazy[attr], (name, attr)
        print(before)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
