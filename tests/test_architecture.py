"""The rooms of the house and who may import whom (ARCHITECTURE.md), checked as code.

The contracts live in pyproject.toml ``[tool.importlinter]`` and run through import-linter here. In the
repository, training/ and export/ sit beside clear_sdk/, and are installed as ``clear_sdk.training``
and ``clear_sdk.export``; import-linter reads packages from disk, so the test lays the package out as
a wheel installs it (copies of the .py files) and lints that.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
ROOMS = {"cli", "training", "export"}  # every other child of clear_sdk is the runtime


def _installed_layout(dest: Path) -> Path:
    """clear_sdk/ with training/ and export/ inside it, as ``pip install`` lays them out (sources only)."""
    only_py = shutil.ignore_patterns("__pycache__", "*.onnx", "*.json", "*.md", "*.txt", "*.yaml", "*.png")
    shutil.copytree(REPO / "clear_sdk", dest / "clear_sdk", ignore=only_py)
    for room in ("training", "export"):
        shutil.copytree(REPO / room, dest / "clear_sdk" / room, ignore=only_py)
    return dest


def _lint(root: Path) -> subprocess.CompletedProcess:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.skip("import-linter is not installed (it is in the [dev] extra)")
    # cwd and PYTHONPATH point at the copy: the editable install's finder comes after the path finder
    return subprocess.run(
        [lint, str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_contracts_hold(tmp_path):
    proc = _lint(_installed_layout(tmp_path / "site"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken" in proc.stdout, proc.stdout[-2000:]


def test_a_runtime_module_reaching_training_breaks_the_contract(tmp_path):
    """The lint can fail: a lazy import of training inside a runtime function is caught (and the layout
    trick really puts clear_sdk.training in the graph)."""
    root = _installed_layout(tmp_path / "site")
    with (root / "clear_sdk" / "errors.py").open("a") as f:
        f.write(
            "\n\ndef _sneaky():\n    from clear_sdk.training.models import create_model\n\n    return create_model\n"
        )
    proc = _lint(root)
    assert proc.returncode != 0
    assert "The runtime imports neither torch nor training, export or the CLI BROKEN" in proc.stdout
    assert "clear_sdk.errors -> clear_sdk.training.models" in proc.stdout, proc.stdout[-3000:]


def _runtime_children() -> set[str]:
    pkg = REPO / "clear_sdk"
    names = {p.stem for p in pkg.glob("*.py") if p.stem != "__init__"}
    names |= {p.name for p in pkg.iterdir() if (p / "__init__.py").is_file()}
    return {f"clear_sdk.{n}" for n in names - ROOMS - {"__main__"}}


def test_the_runtime_contract_names_every_runtime_module():
    contract = PYPROJECT["tool"]["importlinter"]["contracts"][0]
    assert "torch" in contract["forbidden_modules"] and "clear_sdk.training" in contract["forbidden_modules"]
    missing = _runtime_children() - set(contract["source_modules"])
    assert not missing, f"add {sorted(missing)} to the runtime contract in pyproject.toml"
    gone = set(contract["source_modules"]) - _runtime_children()
    assert not gone, f"{sorted(gone)} no longer exist: remove them from the runtime contract"


def test_every_package_is_listed_for_the_wheel():
    """A folder with an __init__.py that pyproject does not list would be missing from a non-editable install."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    on_disk = set()
    for top, name in (("clear_sdk", "clear_sdk"), ("training", "clear_sdk.training"), ("export", "clear_sdk.export")):
        for init in (REPO / top).rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(REPO / top).parts
            on_disk.add(".".join((name, *rel)))
    assert on_disk - listed == set(), f"list {sorted(on_disk - listed)} in [tool.setuptools] packages"


def _public_runtime() -> set[str]:
    import clear_sdk

    public_modules = {"clear_sdk", "clear_sdk.video", "clear_sdk.synthetic", "clear_sdk.visualize"}
    return public_modules | {f"clear_sdk.{n}" for n in clear_sdk.__all__}


@pytest.mark.parametrize("script", sorted((REPO / "examples").glob("*.py")), ids=lambda p: p.name)
def test_examples_use_only_the_public_runtime(script):
    public = _public_runtime()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("clear_sdk"):
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names if a.name.startswith("clear_sdk")]
        else:
            continue
        for m in modules:
            assert m in public, f"{script.name}:{node.lineno} imports {m}; examples use only {sorted(public)}"


def test_every_runtime_module_imports_with_torch_blocked(run_without_torch):
    """Each runtime module (and the CLI, whose commands import training lazily) imports without torch."""
    import pkgutil

    import clear_sdk

    names = [
        m.name
        for m in pkgutil.walk_packages(clear_sdk.__path__, "clear_sdk.")
        if not m.name.startswith(("clear_sdk.training", "clear_sdk.export")) and not m.name.endswith("__main__")
    ]
    assert len(names) > 20
    proc = run_without_torch(
        f"""
        import importlib, sys
        for name in {names!r}:
            importlib.import_module(name)
        bad = [m for m in sys.modules if m.startswith(("clear_sdk.training", "clear_sdk.export", "timm"))]
        print(bad)
        sys.exit(1 if bad else 0)
        """,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
