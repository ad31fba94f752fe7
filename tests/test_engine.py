"""The stage engine's rules on stand-in stages: cached, stale (kept aside), resume only a
matching checkpoint, forced with its downstream, upstream first, outputs checked."""

import json
import os
import shutil

import pytest

from pipelines.engine.identity import Identity, file_digest
from pipelines.engine.markers import read_done
from pipelines.engine.runner import plan_status, run_plan
from pipelines.engine.stage import Stage, UpstreamError
from runtime.checkpoints import save_torch_atomic
from segmentation.rows import Row

ENV = {"device": "cpu", "precision": "fp32"}


def _stage(tmp_path, key, calls, kind="fuse", config="a", upstream=(), row=None, fail=False):
    folder = tmp_path / key.replace(":", "_")

    def identify(outputs):
        return Identity({"config": config, "code": 1, "upstream": [outputs[k] for k in upstream]})

    def run(resume, identity):
        calls.append((key, resume))
        if fail:
            raise RuntimeError("killed")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "out.txt").write_text(f"{config} {identity}")
        return {"ok": True}

    return Stage(
        key,
        kind,
        folder,
        identify,
        run,
        lambda: _digest(folder / "out.txt"),
        key,
        upstream=tuple(upstream),
        row=row,
    )


def _digest(path):
    return file_digest(path) if path.is_file() else ""


def _plan(tmp_path, calls, **configs):
    return [
        _stage(tmp_path, "fuse:a", calls, config=configs.get("fuse", "a")),
        _stage(
            tmp_path,
            "segmentation:fused:a:seed0",
            calls,
            "segmentation",
            configs.get("seg", "a"),
            upstream=("fuse:a",),
            row=Row.fused("a"),
        ),
        _stage(
            tmp_path,
            "segmentation:visible:seed0",
            calls,
            "segmentation",
            configs.get("seg", "a"),
            row=Row("visible"),
        ),
    ]


def _run(stages, force=(), only=()):
    plan_status(stages, list(force))
    return run_plan(stages, list(only), ENV, "run_all", log=lambda line: None)


def test_second_run_is_cached(tmp_path):
    calls = []
    _run(_plan(tmp_path, calls))
    assert len(calls) == 3
    before = _run(_plan(tmp_path, calls))
    assert len(calls) == 3 and set(before.values()) == {"cached"}
    done = read_done(tmp_path / "fuse_a")
    assert done["environment"] == ENV and done["output"] == file_digest(tmp_path / "fuse_a" / "out.txt")


def test_changed_setting_reruns_and_keeps_every_old_result(tmp_path):
    calls = []
    _run(_plan(tmp_path, calls))
    stages = _plan(tmp_path, calls, seg="b")
    plan_status(stages)
    assert [(s.status, s.reason) for s in stages[1:]] == [("stale", "changed: config")] * 2
    run_plan(stages, [], ENV, "run_all", log=lambda line: None)
    _run(_plan(tmp_path, calls, seg="c"))  # twice in the same second: unique names
    kept = sorted(tmp_path.glob("segmentation_visible_seed0.superseded-*"))
    assert len(kept) == 2
    assert {(k / "out.txt").read_text().split()[0] for k in kept} == {"a", "b"}
    assert (tmp_path / "fuse_a").is_dir() and not list(tmp_path.glob("fuse_a.superseded-*"))


def test_changed_upstream_output_reruns_downstream(tmp_path):
    calls = []
    _run(_plan(tmp_path, calls))
    before = _run(_plan(tmp_path, calls, fuse="b"))
    assert {k for k, v in before.items() if v != "cached"} == {"fuse:a", "segmentation:fused:a:seed0"}
    done = read_done(tmp_path / "segmentation_fused_a_seed0")
    assert done["upstream"] == {"fuse:a": read_done(tmp_path / "fuse_a")["output"]}


def test_output_modified_after_finishing_is_stale(tmp_path):
    calls = []
    _run(_plan(tmp_path, calls))
    (tmp_path / "fuse_a" / "out.txt").write_text("edited by hand")
    stages = _plan(tmp_path, calls)
    plan_status(stages)
    assert stages[0].status == "stale" and "modified" in stages[0].reason
    assert stages[1].status == "stale" and "fuse:a" in stages[1].reason


def test_only_a_checkpoint_of_the_same_identity_resumes(tmp_path):
    calls = []
    stages = _plan(tmp_path, calls)
    plan_status(stages)
    visible = stages[2]
    save_torch_atomic(visible.folder / "checkpoint.pt", {"identity": visible.identity.digest})
    plan_status(stages)
    assert visible.status == "resume"
    changed = _plan(tmp_path, calls, seg="b")
    plan_status(changed)
    assert changed[2].status == "stale" and "another identity" in changed[2].reason
    run_plan(changed, ["input=visible"], ENV, "run_all", log=lambda line: None)
    assert calls == [("segmentation:visible:seed0", False)]
    aside = next(tmp_path.glob("segmentation_visible_seed0.superseded-*"))
    assert (aside / "checkpoint.pt").is_file()


def test_force_reruns_downstream_and_keeps_the_old_result(tmp_path):
    calls = []
    _run(_plan(tmp_path, calls))
    before = _run(_plan(tmp_path, calls), force=["fuse"])
    assert before == {
        "fuse:a": "forced",
        "segmentation:fused:a:seed0": "forced",
        "segmentation:visible:seed0": "cached",
    }
    assert len(list(tmp_path.glob("fuse_a.superseded-*-forced"))) == 1


def test_upstream_not_current_and_not_selected_is_an_error(tmp_path):
    calls = []
    _run(_plan(tmp_path, calls))
    stages = _plan(tmp_path, calls, fuse="b")
    plan_status(stages)
    with pytest.raises(UpstreamError) as error:
        run_plan(stages, ["input=fused:a"], ENV, "python run_all.py", log=lambda line: None)
    message = str(error.value)
    assert "\n" not in message and "reads fuse:a" in message
    assert message.endswith("python run_all.py --only fuse:a")
    assert len(calls) == 3  # nothing ran
    _run(_plan(tmp_path, calls, fuse="b"), only=["fuse:a", "input=fused:a"])  # both: fine
    assert [c[0] for c in calls[3:]] == ["fuse:a", "segmentation:fused:a:seed0"]


def test_same_upstream_output_after_a_rerun_keeps_downstream(tmp_path):
    calls = []
    _run(_plan(tmp_path, calls))
    (tmp_path / "fuse_a" / "done.json").unlink()  # lost marker, same output once rerun
    before = _run(_plan(tmp_path, calls))
    assert before["segmentation:fused:a:seed0"] == "stale"
    assert [c[0] for c in calls[3:]] == ["fuse:a"]  # its downstream turned out current


def test_failed_stage_is_not_marked_done(tmp_path):
    calls = []
    stage = _stage(tmp_path, "fusion:sspfusion", calls, "fusion", fail=True)
    plan_status([stage])
    with pytest.raises(RuntimeError):
        run_plan([stage], [], ENV, "run_all", log=lambda line: None)
    assert read_done(stage.folder) is None


def test_time_left_names_kinds_not_timed_yet(tmp_path):
    calls, lines = [], []
    stages = [
        _stage(tmp_path, "fuse:a", calls, "fuse"),
        _stage(tmp_path, "segmentation:x", calls, "segmentation"),
        _stage(tmp_path, "fuse:b", calls, "fuse"),
        _stage(tmp_path, "segmentation:y", calls, "segmentation"),
    ]
    plan_status(stages)
    run_plan(stages, [], ENV, "run_all", log=lines.append)
    assert lines[0].endswith(", 2 segmentation and 1 fuse stage(s) not timed yet left after it")
    assert "about 0s plus 1 segmentation stage(s) not timed yet" in lines[1]
    assert lines[2].endswith("about 0s left after it") and "not timed" not in lines[2]
    assert "left after it" not in lines[3]


def test_a_resumed_stage_does_not_time_the_others(tmp_path):
    """A resumed stage ran only its remainder: its time would make the estimate of the stages
    left after it too short, so its kind stays untimed."""
    calls, lines = [], []
    stages = [
        _stage(tmp_path, "segmentation:x", calls, "segmentation"),
        _stage(tmp_path, "segmentation:y", calls, "segmentation"),
        _stage(tmp_path, "segmentation:z", calls, "segmentation"),
    ]
    plan_status(stages)
    save_torch_atomic(stages[0].folder / "checkpoint.pt", {"identity": stages[0].identity.digest})
    plan_status(stages)
    assert stages[0].status == "resume"
    run_plan(stages, [], ENV, "run_all", log=lines.append)
    assert lines[1].endswith(", 1 segmentation stage(s) not timed yet left after it")


def test_done_json_is_plain_json(tmp_path):
    calls = []
    _run(_plan(tmp_path, calls))
    payload = json.loads((tmp_path / "fuse_a" / "done.json").read_text())
    assert set(payload["parts"]) == {"config", "code", "upstream"}


def test_report_warns_when_rows_were_trained_differently():
    from pipelines.engine.report import provenance_notes

    row = {
        "input": "visible",
        "label": "Visible",
        "seeds": [0],
        "data": "d",
        "fusion_model": None,
        "fused_images": None,
        "device": "cpu",
        "precision": "fp32",
        "threads": 2,
        "libraries": "numpy 2.4, torch 2.14",
        "runtime": "r",
        "weights": "w",
        "torch": "2",
        "smp": "0.6",
        "config": "c",
        "wall_seconds": 3.0,
    }
    same = provenance_notes([row, {**row, "input": "infrared", "label": "Infrared"}])
    assert "## Provenance" in same and not any("Warning" in line for line in same)
    mixed = provenance_notes(
        [
            row,
            {
                **row,
                "input": "infrared",
                "label": "Infrared",
                "device": "cuda",
                "precision": "bfloat16",
                "threads": 1,
            },
        ]
    )
    warning = next(line for line in mixed if "Warning" in line)
    assert "device: cpu (Visible); cuda (Infrared)" in warning  # names the rows
    assert (
        "precision: fp32 (Visible); bfloat16 (Infrared)" in warning and "threads: 2 (Visible); 1" in warning
    )
    libraries = provenance_notes(
        [row, {**row, "input": "infrared", "label": "Infrared", "libraries": "numpy 2.5, torch 2.14"}]
    )
    assert any("libraries: numpy 2.4, torch 2.14 (Visible)" in line for line in libraries)


def test_manifest_sees_contents_not_metadata(tmp_path):
    from pipelines.engine.identity import FileDigests, folder_manifest

    folder = tmp_path / "labels"
    folder.mkdir()
    label = folder / "00001D.png"
    label.write_bytes(b"class map A")
    before = folder_manifest(folder)
    stat = label.stat()
    label.write_bytes(b"class map B")  # same size, edited in place, old mtime put back
    os.utime(label, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert label.stat().st_size == stat.st_size and label.stat().st_mtime_ns == stat.st_mtime_ns
    assert folder_manifest(folder) != before
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)  # new files, new times, same bytes: same manifest
    assert folder_manifest(copy) == folder_manifest(folder)

    memo = FileDigests()
    memo.attach(tmp_path / "memo.json")
    digest = memo.of(label)
    memo.save()
    again = FileDigests()
    again.attach(tmp_path / "memo.json")
    assert again.of(label) == digest  # remembered across runs while the file is untouched
