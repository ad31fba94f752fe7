"""The code part of a stage's identity (pipelines/engine/code.py): every change of the code a
stage runs changes it, docstrings, comments and formatting do not, and a changed synthetic-scene
generator marks the generated data stale."""

import shutil

import pytest

from configs.schema import load_config
from pipelines.engine import code
from pipelines.engine.code import code_digest, code_modules
from tests.conftest import REPO


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the project's packages that the code digest reads instead of the repository."""
    for package in code.PROJECT_PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code, "REPO", tmp_path)
    return tmp_path


def _edit(path, old, new):
    text = path.read_text()
    assert old in text, f"{path}: '{old}' not found"
    path.write_text(text.replace(old, new, 1))


# every module the review found changing numbers without a code version covering it
RUNS = {
    "segmentation.train": [
        "segmentation.pretrained",
        "runtime.training",
        "runtime.distributed",
        "msrs.layout",
        "segmentation.data",
        "segmentation.losses",
    ],
    "fusion.methods.classic": ["fusion.colour", "fusion.methods.base"],
    "msrs.synthetic": ["msrs.layout"],
    "fusion.training": ["fusion.data", "fusion.guard", "runtime.precision", "runtime.training"],
    "fusion.sspfusion.recipe": ["fusion.sspfusion.model", "fusion.sspfusion.losses"],
}


@pytest.mark.parametrize("entry", RUNS)
def test_a_stage_covers_the_code_it_runs(entry):
    assert set(RUNS[entry]) <= set(code_modules(entry))


def test_a_change_of_numbers_changes_the_code_identity(project):
    before = code_digest("segmentation.train")
    _edit(
        project / "segmentation" / "losses.py",
        "ignore_index=ignore_index)",
        "ignore_index=ignore_index) * 1.0",
    )
    assert code_digest("segmentation.train") != before
    classic = code_digest("fusion.fuse", "fusion.methods.classic")
    _edit(project / "fusion" / "colour.py", "[[0.299", "[[0.2990001")  # the luminance weights
    assert code_digest("fusion.fuse", "fusion.methods.classic") != classic


def test_docstrings_comments_and_formatting_keep_it(project):
    before = code_digest("segmentation.train")
    path = project / "segmentation" / "losses.py"
    _edit(path, '"""Dice + cross-entropy', '"""Reworded: dice + cross-entropy')
    _edit(path, "from __future__ import annotations\n", "from __future__ import annotations  # a comment\n\n")
    assert code_digest("segmentation.train") == before


def test_a_changed_generator_marks_the_synthetic_data_stale(project, tmp_path):
    from pipelines.engine import RunLayout, resolve_data_root
    from pipelines.engine.markers import read_done

    config = load_config(REPO / "configs" / "tiny.yaml", ["data.synthetic.train=2", "data.synthetic.test=2"])
    layout = RunLayout(tmp_path / "run")
    root = resolve_data_root(config, None, layout)
    first = read_done(root)["identity"]
    assert resolve_data_root(config, None, layout) == root and read_done(root)["identity"] == first
    _edit(project / "msrs" / "synthetic.py", "NIGHT_VISIBLE_GAIN = 0.1", "NIGHT_VISIBLE_GAIN = 0.2")
    resolve_data_root(config, None, layout)
    assert read_done(root)["identity"] != first
    assert len(list((tmp_path / "run").glob("data.superseded-*-stale"))) == 1  # the old set kept


def test_unknown_modules_are_refused():
    with pytest.raises(ValueError, match="not a module of this project"):
        code_modules("numpy")
