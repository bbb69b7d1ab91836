"""The import rules of ARCHITECTURE.md, checked on the source: this test fails when one is broken."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("models", "features", "training", "serving", "pipelines")

FORBIDDEN: dict[str, set[str]] = {
    "models": {"features", "training", "serving", "pipelines", "feast", "bentoml", "mlflow"},
    "features": {"models", "training", "serving", "pipelines", "bentoml", "mlflow"},
    "training": {"serving", "pipelines", "bentoml"},
    "serving": {"training", "pipelines"},
    "pipelines": set(),
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", PROJECT)
def test_package_imports_follow_the_rules(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no python files"
    broken = [
        f"{f.relative_to(ROOT)} imports {bad}"
        for f in files
        for bad in sorted(imported_roots(f) & FORBIDDEN[package])
    ]
    assert not broken, "import rules broken:\n" + "\n".join(broken)


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("import mlflow\nfrom training.fit import x\n")
    assert {"mlflow", "training"} <= imported_roots(f)
