"""The one-way import rule: configs/ is the ground floor, runtime/ and msrs/ sit on it (msrs/ may
use runtime/'s atomic files), and none of them reaches up into the libraries or the pipelines
(checked on the source, without importing it)."""

import ast

import pytest

from .conftest import REPO

FORBIDDEN = {
    "configs": ("pipelines", "fusion", "segmentation", "msrs", "runtime"),
    "runtime": ("pipelines", "fusion", "segmentation", "msrs"),
    "msrs": ("pipelines", "fusion", "segmentation"),
}


def _imported(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_ground_floor_imports_nothing_above_it(package):
    files = sorted((REPO / package).rglob("*.py"))
    assert files
    wrong = {str(path.relative_to(REPO)): sorted(_imported(path) & set(FORBIDDEN[package])) for path in files}
    assert {name: found for name, found in wrong.items() if found} == {}


def test_the_rule_sees_a_lazy_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from fusion.methods import build_method\n")
    assert "fusion" in _imported(module)
