"""The package's layers: imports go only downward (report → run → method, data), and no module grows
past the size one can read in a sitting."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fairpo"
MAY_IMPORT = {
    "method": {"method"},
    "data": {"data"},
    "run": {"run", "method", "data"},
    "report": {"report", "run", "method", "data"},
}
"""For each layer, the layers its modules may import (fairpo.rng, the shared base, is open to all)."""
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


def fairpo_imports(path: Path) -> list[str]:
    """Every ``fairpo…`` module a file imports, at any depth (lazy imports inside functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "fairpo":
            found += [node.module] if node.module != "fairpo" else [f"fairpo.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "fairpo"]
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_imports_go_only_downward(path):
    layer = path.relative_to(PACKAGE).parts[0]
    if layer not in MAY_IMPORT:
        assert path.name in ("__init__.py", "rng.py"), f"{path} is outside the four layers"
        return
    for module in fairpo_imports(path):
        target = module.split(".")[1]
        assert target == "rng" or target in MAY_IMPORT[layer], (
            f"{path.relative_to(PACKAGE)} ({layer}) imports {module}: the {target} layer is above or beside it")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_every_module_says_what_it_owns_and_stays_readable(path):
    text = path.read_text(encoding="utf-8")
    assert ast.get_docstring(ast.parse(text)), f"{path} has no module docstring"
    assert len(text.splitlines()) <= 420, f"{path} has {len(text.splitlines())} lines; split it by concern"


def test_the_checker_sees_lazy_and_aliased_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text("from fairpo import rng\nimport fairpo.run.store as s\n"
                      "def f():\n    from fairpo.report.tables import Table\n")
    assert fairpo_imports(sample) == ["fairpo.rng", "fairpo.run.store", "fairpo.report.tables"]
