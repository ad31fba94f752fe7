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
    current = {s.input_name: s.identity.digest for s in stages if s.kind == "segmentation"}
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
        segmentation_stage(other, layout, run / "data", "visible", 0, Manifests(), env, progress=False),
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
        segmentation_stage(visible, layout, run / "data", "visible", 0, Manifests(), env, progress=False),
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
