"""The code part of a stage's identity: a digest of the project code the stage runs.

:func:`code_digest` starts from a stage kind's entry module (``segmentation.train`` for a
segmentation stage ...), follows every import of a project package in it (``import`` and
``from ... import`` statements anywhere in the module, those inside functions too), and digests
each module reached: its syntax tree without docstrings (comments are not in the tree), so a
reworded comment or docstring, or a reformatted file, keeps the identity, and any other change
of the code a stage runs changes it.

DECISION (ours): an automatic digest, not a hand-bumped ``CODE_VERSION`` beside the code: no
constant of that kind had ever been bumped when three commits changed the synthetic scenes'
pixels, and code that changes numbers (the packaged-weights loader, the training shell, the
colour conversion, each fusion rule) was covered by none. The price is conservative: a change
anywhere in what a stage imports (a new config field included) reruns that stage.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import cache
from pathlib import Path

PROJECT_PACKAGES = ("configs", "fusion", "msrs", "pipelines", "runtime", "segmentation")
REPO = Path(__file__).resolve().parents[2]


def _source_file(module: str, roots: tuple[str, ...] = PROJECT_PACKAGES) -> Path | None:
    """The file of a module of the packages ``roots`` (a package's ``__init__.py``), or None
    when it is not one. A project module is found by path under the repository, without
    importing anything; a plugin's (a root outside the project) by the import system."""
    parts = module.split(".")
    if parts[0] not in roots:
        return None
    if parts[0] in PROJECT_PACKAGES:
        base = REPO.joinpath(*parts)
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    node.body = body[1:] or [ast.Pass()]
    return tree


def _imported(tree: ast.AST, module: str, is_package: bool, roots: tuple[str, ...]) -> set[str]:
    """Project modules a module's import statements name (``from a import b``: ``a``, and
    ``a.b`` when that is a module). A registry's ``"module:function"`` strings are not followed:
    the stage that builds a registered method names its module as an entry."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        parts = name.split(".")
        for end in range(1, len(parts) + 1):  # the packages a module's import executes too
            if _source_file(".".join(parts[:end]), roots) is not None:
                found.add(".".join(parts[:end]))
    return found


def _module_digest(module: str, roots: tuple[str, ...]) -> tuple[str, frozenset[str]]:
    """(digest of the module's syntax tree less docstrings, the modules of ``roots`` it imports)."""
    path = _source_file(module, roots)
    stat = path.stat()
    return _parsed(module, str(path), stat.st_mtime_ns, stat.st_size, roots)


@cache
def _parsed(
    module: str, path: str, mtime_ns: int, size: int, roots: tuple[str, ...]
) -> tuple[str, frozenset[str]]:
    """:func:`_module_digest` of one version of a file (the cache key holds its time and size)."""
    tree = _strip_docstrings(ast.parse(Path(path).read_text(), filename=path))
    imports = _imported(tree, module, Path(path).name == "__init__.py", roots)
    dump = ast.dump(tree, annotate_fields=False, include_attributes=False)
    return hashlib.sha256(dump.encode()).hexdigest()[:16], frozenset(imports)


def code_modules(*entries: str, plugins: tuple[str, ...] = ()) -> dict[str, str]:
    """module -> digest of every module ``entries`` run, transitively, within this project's
    packages and the packages ``plugins`` (a method plugin's own top-level packages: their code
    is followed as the project's is; the libraries any of them import are not, they are in the
    identity's library versions)."""
    roots = tuple(dict.fromkeys([*PROJECT_PACKAGES, *plugins]))
    digests: dict[str, str] = {}
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in digests:
            continue
        if _source_file(module, roots) is None:
            raise ValueError(f"{module}: not a module of this project ({', '.join(roots)}) or of a plugin")
        digests[module], imports = _module_digest(module, roots)
        todo.extend(sorted(imports - set(digests)))
    return dict(sorted(digests.items()))


def code_digest(*entries: str, plugins: tuple[str, ...] = ()) -> str:
    """One digest over :func:`code_modules` of ``entries``: the ``code`` part of an identity."""
    modules = code_modules(*entries, plugins=plugins)
    text = "\n".join(f"{module}:{digest}" for module, digest in modules.items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


__all__ = ["code_digest", "code_modules", "PROJECT_PACKAGES"]
