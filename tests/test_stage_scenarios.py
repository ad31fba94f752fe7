"""Fault injection on a real tiny experiment (configs/tiny.yaml, in-process): after each fault,
what reran, what was kept aside, and what Table 2 says.

One base run (fusion, fuse, quality, segmentation, report) is made once and copied for each
scenario (the copy keeps modification times, so the copy is as current as the original)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from configs.schema import ConfigError, load_config
from pipelines.engine import (
    RunLayout,
    UpstreamError,
    build_plan,
    environment,
    plan_status,
    resolve_data_root,
    run_alone,
    run_plan,
    segmentation_stage,
)
from pipelines.engine.identity import Manifests
from pipelines.engine.markers import read_done
from segmentation.rows import Row
from segmentation.train import train_segmentation

from .conftest import REPO

TINY = REPO / "configs" / "tiny.yaml"
FAST = [
    "segmentation.epochs=2",
    "segmentation.freeze_epochs=0",
    "segmentation.decoder_channels=32",
    "runtime.threads=1",
]
NO_REPORT = ["fusion", "fuse", "quality", "segmentation"]
ALL_SEGMENTATION = {
    "segmentation:infrared:seed0",
    "segmentation:visible:seed0",
    "segmentation:fused:sspfusion:seed0",
    "segmentation:fused:average:seed0",
}


def _config(*overrides):
    return load_config(TINY, [*FAST, *overrides])


def _plan(out, config, force=()):
    layout = RunLayout(out)
    env = environment(config)
    stages = build_plan(
        config, layout, resolve_data_root(config, None, layout), config.methods, env, progress=False
    )
    plan_status(stages, list(force))
    return stages, env


def _run(out, config, only=NO_REPORT, force=()):
    """Run the plan (without the report unless ``only`` says so: it is the slow part of a tiny
    run); returns the keys of the stages that ran, the report aside."""
    stages, env = _plan(out, config, force)
    before = run_plan(stages, list(only), env, "run_all", log=lambda line: None)
    return {key for key, status in before.items() if status != "cached" and key != "report"}


def _table(out) -> list[str]:
    return list(pd.read_csv(out / "report" / "table2.csv")["input"])


def _provenance_is_current(out, config):
    """Every row of provenance.json names the identity its stage has now."""
    stages, _ = _plan(out, config)
    current = {s.row.name: s.identity.digest for s in stages if s.kind == "segmentation"}
    rows = json.loads((out / "report" / "provenance.json").read_text())
    assert {row["input"]: row["segmentation_identity"][0] for row in rows} == current


def _touch_png(path, change):
    image = np.array(Image.open(path))
    image[0, 0] = change(image[0, 0])
    Image.fromarray(image).save(path)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "run"
    assert _run(out, _config(), only=()) >= ALL_SEGMENTATION
    return out


@pytest.fixture
def run(base, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(base, copy)
    return copy


def test_copy_of_base_is_cached(run):
    assert _run(run, _config(), only=()) == set()
    assert _table(run) == ["Infrared", "Visible", "Average", "SSPFusion"]
    _provenance_is_current(run, _config())


def test_crash_then_changed_setting_does_not_resume_the_old_checkpoint(run):
    visible = _config("inputs=[visible]", "methods=[]")
    stages, _ = _plan(run, visible)
    (stage,) = [s for s in stages if s.kind == "segmentation"]
    shutil.rmtree(stage.folder)  # the run crashed after one epoch:
    train_segmentation(
        visible,
        run / "data",
        "visible",
        stage.folder,
        0,
        progress=False,
        stop_after=1,
        identity=stage.identity.digest,
    )
    assert _plan(run, visible)[0][0].status == "resume"
    changed = _config("inputs=[visible]", "methods=[]", "segmentation.lr=0.02")
    stages, _ = _plan(run, changed)
    assert stages[0].reason == "unfinished; its checkpoint has another identity"
    assert _run(run, changed, only=()) == {"segmentation:visible:seed0"}
    (aside,) = stage.folder.parent.glob("seed0.superseded-*")
    assert (aside / "checkpoint.pt").is_file() and not (aside / "done.json").exists()
    done = read_done(stage.folder)
    metrics = json.loads((stage.folder / "metrics.json").read_text())
    assert done["identity"] == metrics["identity"] == _plan(run, changed)[0][0].identity.digest
    history = pd.read_csv(stage.folder / "history.csv")
    assert list(history["epoch"]) == [1, 2] and history["lr"].iloc[0] == pytest.approx(0.02)
    assert _table(run) == ["Visible"]


def test_changed_label_reruns_segmentation_only(run):
    config = _config("inputs=[visible]", "methods=[average]")
    _touch_png(
        next((run / "data" / "train" / "Segmentation_labels").iterdir()), lambda value: (value + 1) % 9
    )
    assert _run(run, config) == {"segmentation:visible:seed0", "segmentation:fused:average:seed0"}


def test_changed_infrared_image_reruns_all_that_reads_infrared(run):
    config = _config("methods=[sspfusion]")
    _touch_png(next((run / "data" / "train" / "ir").iterdir()), lambda value: value ^ 1)
    stages, _ = _plan(run, config)
    assert {s.key: s.reason for s in stages}["fusion:sspfusion"] == "changed: data"
    # the visible row reads no infrared file: it alone stays cached
    assert _run(run, config) == {
        "fusion:sspfusion",
        "fuse:sspfusion",
        "quality:sspfusion",
        "segmentation:infrared:seed0",
        "segmentation:fused:sspfusion:seed0",
    }


def test_force_fusion_reruns_its_downstream_and_keeps_the_old_model(run):
    old = read_done(run / "fusion" / "sspfusion")["output"]
    assert _run(run, _config("inputs=[]", "methods=[sspfusion]"), force=["fusion"]) == {
        "fusion:sspfusion",
        "fuse:sspfusion",
        "quality:sspfusion",
        "segmentation:fused:sspfusion:seed0",
    }
    for folder in (
        "fusion/sspfusion",
        "fused/sspfusion",
        "quality/sspfusion",
        "segmentation/fused-sspfusion/seed0",
    ):
        (aside,) = (run / folder).parent.glob((run / folder).name + ".superseded-*-forced")
        assert (aside / "done.json").is_file()
    (aside,) = (run / "fusion").glob("sspfusion.superseded-*")
    assert read_done(aside)["output"] == old
    assert read_done(run / "fused" / "sspfusion")["upstream"] == {
        "fusion:sspfusion": read_done(run / "fusion" / "sspfusion")["output"]
    }


def test_standalone_run_into_run_alls_folder_is_never_mixed_in(run):
    visible = _config("inputs=[visible]", "methods=[]")
    layout = RunLayout(run)
    other = _config("inputs=[visible]", "methods=[]", "segmentation.lr=0.05")
    env = environment(other)
    run_alone(
        segmentation_stage(other, layout, run / "data", Row("visible"), 0, Manifests(), env, progress=False),
        False,
        env,
        log=lambda line: None,
    )
    assert _run(run, visible, only=()) == {"segmentation:visible:seed0"}  # moved aside
    assert len(list((run / "segmentation" / "visible").glob("seed0.superseded-*"))) == 2
    _provenance_is_current(run, visible)
    # the same config by hand is the same stage: run_all takes it as it is
    env = environment(visible)
    run_alone(
        segmentation_stage(
            visible, layout, run / "data", Row("visible"), 0, Manifests(), env, progress=False
        ),
        True,
        env,
        log=lambda line: None,
    )
    assert _run(run, visible) == set()
    assert len(list((run / "segmentation" / "visible").glob("seed0.superseded-*"))) == 3


def test_only_a_row_whose_fuse_stage_is_stale_names_the_fuse_stage(run):
    gtf = _config("inputs=[]", "methods=[gtf]")
    assert _run(run, gtf, only=["fuse"]) == {"fuse:gtf"}
    _touch_png(next((run / "data" / "test" / "vi").iterdir()), lambda value: value ^ 1)
    with pytest.raises(
        UpstreamError,
        match=r"^segmentation:fused:gtf:seed0 reads fuse:gtf, "
        r"which is stale \(changed: data\); build it first: run_all --only "
        r"fuse:gtf$",
    ):
        _run(run, gtf, only=["input=fused:gtf"])
    assert not (run / "segmentation" / "fused-gtf").exists()


def _external(folder, source):
    for split in ("train", "test"):
        shutil.copytree(source / split / "vi", folder / split)
    return folder


def test_external_folders(run, tmp_path):
    data = run / "data"
    one = _external(tmp_path / "a" / "DDFM", data)
    two = _external(tmp_path / "b" / "TarDAL", data)
    same_name = _external(tmp_path / "c" / "DDFM", data)
    with pytest.raises(
        ConfigError, match=f"external:{one}' and 'external:{same_name}' would both write fused/external-DDFM"
    ):
        _plan(run, _config("inputs=[]", f"methods=['external:{one}','external:{same_name}']"))
    config = _config("inputs=[]", f"methods=['external:{one}','external:{two}']")
    assert len(_run(run, config)) == 6  # fuse, quality, segmentation of each
    image = next((one / "test").iterdir())
    _touch_png(image, lambda value: value ^ 1)
    assert _run(run, config, only=()) == {
        f"fuse:external:{one}",
        f"quality:external:{one}",
        f"segmentation:fused:external:{one}:seed0",
    }
    assert _table(run) == ["TarDAL (external)", "DDFM (external)"]
    _provenance_is_current(run, config)


# ----------------------------------------------------------------------------- real use


def test_replaced_evidence_is_stale(run):
    """The output digest covers every file the report reads: a row whose per-image evidence (or
    model) is replaced after it finished is stale, not silently cached."""
    visible = run / "segmentation" / "visible" / "seed0"
    evidence = dict(np.load(visible / "confusion_per_image.npz"))
    evidence["confusion"][0, 0, 0] += 1  # one pixel more: the evidence no longer matches
    np.savez(visible / "confusion_per_image.npz", **evidence)
    stages, _ = _plan(run, _config())
    stage = next(s for s in stages if s.key == "segmentation:visible:seed0")
    assert (stage.status, stage.reason) == ("stale", "its output was modified after it finished")
    shutil.copy(run / "segmentation" / "infrared" / "seed0" / "model.pt", visible)
    assert next(s for s in _plan(run, _config())[0] if s.key == stage.key).status == "stale"


def test_a_report_on_another_machine_keeps_results_cached(run, monkeypatch):
    """A plan on a machine whose device would resolve another precision (a CPU login node
    reading GPU-made results, or the reverse) keeps every result: the identity holds the
    requested runtime settings, not what the machine makes of them."""
    from pipelines.engine import machine

    monkeypatch.setattr(machine, "pick_device", lambda name: "cuda:0")
    monkeypatch.setattr(machine, "precision_name", lambda config, device: "bfloat16")
    stages, env = _plan(run, _config())
    assert env["device"] == "cuda:0" and env["precision"] == "bfloat16"
    assert {s.status for s in stages if s.cache} == {"cached"}


def test_report_is_built_whole_and_swapped_in(run):
    stray = run / "report" / "table2_vs_paper.csv"  # written by an earlier run on real MSRS
    stray.write_text("input,column,ours,paper,difference\n")
    assert _run(run, _config(), only=["report"]) == set()
    assert not stray.exists() and (run / "report" / "table2.md").is_file()
    assert not list(run.glob(".report.*"))  # no scratch folder left


def test_a_folder_this_tool_did_not_write_is_never_moved(run):
    from pipelines.engine.markers import ForeignFolder

    visible = _config("inputs=[visible]", "methods=[]", "segmentation.lr=0.02")  # stale
    folder = run / "segmentation" / "visible" / "seed0"
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "my notes.txt").write_text("mine")
    stages, _ = _plan(run, visible)
    stage = next(s for s in stages if s.kind == "segmentation")
    assert "holds files this tool did not write" in stage.reason
    with pytest.raises(ForeignFolder, match="holds files this tool did not write"):
        run_plan(stages, [stage.key], {}, "run_all", log=lambda line: None)
    assert (folder / "my notes.txt").read_text() == "mine"
    assert not list(folder.parent.glob("seed0.superseded-*"))


def test_a_library_upgrade_or_other_switches_make_results_stale(run, monkeypatch):
    from pipelines.engine import machine
    from pipelines.engine import stages as stage_module

    versions = {**machine.library_versions(), "numpy": "9.9.9"}
    monkeypatch.setattr(stage_module, "library_versions", lambda: versions)  # fuse and quality stages
    monkeypatch.setattr(machine, "library_versions", lambda: versions)  # environment(): the training stages
    stages, _ = _plan(run, _config())
    reasons = {s.key: s.reason for s in stages}
    assert reasons["fuse:average"] == "changed: libraries"
    assert reasons["segmentation:visible:seed0"] == "changed: libraries"
    monkeypatch.undo()
    deterministic = {s.key: s.reason for s in _plan(run, _config("runtime.cudnn_benchmark=on"))[0]}
    assert deterministic["segmentation:visible:seed0"] == "changed: runtime"
    assert deterministic["fuse:average"] == "identity and output unchanged"
