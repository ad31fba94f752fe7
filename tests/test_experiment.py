"""Stage caching rules of run_all: cached, stale (kept aside), resume, forced, --only."""

import json

from configs.experiment import Stage, plan_status, run_plan


def _stage(tmp_path, key, digest, calls, kind="segmentation", input_name=None):
    folder = tmp_path / key.replace(":", "_")

    def run(resume):
        calls.append((key, resume))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps({"digest": digest}))
        return {"ok": True}
    return Stage(key, kind, folder, digest, run, key, input_name=input_name)


def _run(stages, force=(), only=()):
    plan_status(stages, list(force))
    return run_plan(stages, list(only), log=lambda line: None)


def test_second_run_is_cached(tmp_path):
    calls = []
    _run([_stage(tmp_path, "fuse:a", "h1", calls, "fuse")])
    assert calls == [("fuse:a", False)]
    status = _run([_stage(tmp_path, "fuse:a", "h1", calls, "fuse")])
    assert calls == [("fuse:a", False)] and status == {"fuse:a": "cached"}


def test_changed_setting_reruns_and_keeps_old_result(tmp_path):
    calls = []
    _run([_stage(tmp_path, "fuse:a", "h1", calls, "fuse"), _stage(tmp_path, "fuse:b", "h2", calls)])
    status = _run([_stage(tmp_path, "fuse:a", "h1", calls, "fuse"),
                   _stage(tmp_path, "fuse:b", "h3", calls)])
    assert status == {"fuse:a": "cached", "fuse:b": "done"}
    kept = tmp_path / "fuse_b.superseded-h2"
    assert json.loads((kept / "metrics.json").read_text()) == {"digest": "h2"}
    assert json.loads((tmp_path / "fuse_b" / "done.json").read_text())["config_hash"] == "h3"


def test_unfinished_stage_with_checkpoint_resumes(tmp_path):
    calls = []
    stage = _stage(tmp_path, "segmentation:visible:seed0", "h", calls)
    stage.folder.mkdir(parents=True)
    (stage.folder / "checkpoint.pt").write_bytes(b"x")
    _run([stage])
    assert calls == [("segmentation:visible:seed0", True)]


def test_force_and_only(tmp_path):
    calls = []
    stages = lambda: [_stage(tmp_path, "fuse:a", "h1", calls, "fuse"),  # noqa: E731
                      _stage(tmp_path, "segmentation:visible:seed0", "h2", calls,
                             input_name="visible"),
                      _stage(tmp_path, "segmentation:infrared:seed0", "h3", calls,
                             input_name="infrared")]
    _run(stages(), only=["input=visible"])
    assert [c[0] for c in calls] == ["segmentation:visible:seed0"]
    _run(stages())
    assert len(calls) == 3
    _run(stages(), force=["segmentation"])
    assert [c[0] for c in calls[3:]] == ["segmentation:visible:seed0", "segmentation:infrared:seed0"]


def test_failed_stage_is_not_marked_done(tmp_path):
    def boom(resume):
        raise RuntimeError("killed")
    stage = Stage("fusion:sspfusion", "fusion", tmp_path / "f", "h", boom)
    plan_status([stage], [])
    try:
        run_plan([stage], [], log=lambda line: None)
    except RuntimeError:
        pass
    assert not (tmp_path / "f" / "done.json").exists()


def test_time_left_names_kinds_not_timed_yet(tmp_path):
    calls, lines = [], []
    stages = [_stage(tmp_path, "fuse:a", "h1", calls, "fuse"),
              _stage(tmp_path, "segmentation:x", "h1", calls),
              _stage(tmp_path, "fuse:b", "h1", calls, "fuse"),
              _stage(tmp_path, "segmentation:y", "h1", calls)]
    plan_status(stages, [])
    run_plan(stages, [], log=lines.append)
    assert lines[0].endswith(", 2 segmentation and 1 fuse stage(s) not timed yet left after it")
    assert "about 0s plus 1 segmentation stage(s) not timed yet" in lines[1]
    assert lines[2].endswith("about 0s left after it") and "not timed" not in lines[2]
    assert "left after it" not in lines[3]
