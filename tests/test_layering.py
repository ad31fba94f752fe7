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


def _project_imports(path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, as a dotted name
    (``from a.b import c`` counts as ``a.b`` and ``a.b.c``: c may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` (module -> modules it imports), or []."""
    state: dict[str, int] = {}

    def visit(module, path):
        state[module] = 1
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                return [*path[path.index(other) :], other]
            if other not in state:
                found = visit(other, [*path, other])
                if found:
                    return found
        state[module] = 2
        return []

    for module in sorted(graph):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return []


def _engine_graph(folder) -> dict[str, set[str]]:
    modules = {
        f"pipelines.engine.{path.stem}": path for path in folder.glob("*.py") if path.stem != "__init__"
    }
    return {name: _project_imports(path) & set(modules) for name, path in modules.items()}


def test_the_engine_has_no_import_circle():
    """Each engine module does one job and imports only the ones below it, in functions too."""
    graph = _engine_graph(REPO / "pipelines" / "engine")
    assert len(graph) >= 10
    assert _cycle(graph) == []


def test_the_circle_check_sees_a_circle_hidden_in_a_function(tmp_path):
    (tmp_path / "a.py").write_text("from pipelines.engine.b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from pipelines.engine.a import y\n")
    assert _cycle(_engine_graph(tmp_path)) == [
        "pipelines.engine.a",
        "pipelines.engine.b",
        "pipelines.engine.a",
    ]


def _string_constants(path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


@pytest.mark.parametrize(
    ("prefix", "home"),
    [("fused:", "segmentation/rows.py"), ("external:", "fusion/methods/__init__.py")],
)
def test_one_module_spells_a_name_prefix(prefix, home):
    """A row name (``fused:<method>``) is read by :class:`segmentation.rows.Row` alone, and a
    method name ``external:<folder>`` by :func:`fusion.methods.external_folder` alone: every other
    module holds the typed value or asks that function (messages and docstrings aside)."""
    spelled = set()
    for package in ("configs", "fusion", "msrs", "pipelines", "runtime", "segmentation"):
        for path in (REPO / package).rglob("*.py"):
            code = [text for text in _string_constants(path) if text.startswith(prefix) or text == prefix]
            if code:
                spelled.add(str(path.relative_to(REPO)))
    assert spelled == {home}
