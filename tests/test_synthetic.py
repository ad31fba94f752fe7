"""The built-in synthetic scenes: deterministic, all classes, complementary modalities."""

import hashlib
import subprocess
import sys

import numpy as np

from msrs import list_split, read_ir, read_label, read_vi
from msrs.synthetic import (
    BIKE,
    BUMP,
    CAR_STOP,
    COLOR_CONE,
    CURVE,
    GUARDRAIL,
    PERSON,
    generate_scene,
    modality_contrast,
    write_synthetic,
)

from .conftest import REPO


def _digest(root):
    sha = hashlib.sha256()
    for path in sorted(root.rglob("*.png")):
        sha.update(path.relative_to(root).as_posix().encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_synthetic(tmp_path / "a", train=4, test=2, height=48, width=64, seed=3)
    b = write_synthetic(tmp_path / "b", train=4, test=2, height=48, width=64, seed=3)
    c = write_synthetic(tmp_path / "c", train=4, test=2, height=48, width=64, seed=4)
    assert _digest(a) == _digest(b) != _digest(c)


def test_all_classes_in_both_splits(synthetic_root):
    for split in ("train", "test"):
        present = set()
        for pair in list_split(synthetic_root, split):
            present |= set(np.unique(read_label(pair.label)).tolist())
        assert present == set(range(9)), split


def _mean_contrast(scenes, modality, class_id, night):
    values = [
        modality_contrast(ir if modality == "ir" else vi, label, class_id)
        for ir, vi, label, is_night in scenes
        if is_night == night
    ]
    return float(np.nanmean(values))


def test_modalities_are_complementary():
    scenes = [
        generate_scene(
            11,
            i,
            96,
            128,
            night=i % 2 == 1,
            force_class=(PERSON, BIKE, CAR_STOP, GUARDRAIL, COLOR_CONE, BUMP)[i % 6],
        )
        for i in range(48)
    ]
    for warm in (PERSON, BIKE):
        ir_night = _mean_contrast(scenes, "ir", warm, night=True)
        vi_night = _mean_contrast(scenes, "vi", warm, night=True)
        assert ir_night > 2 * vi_night, (warm, ir_night, vi_night)
        assert ir_night > 30
    for painted in (CURVE, CAR_STOP, GUARDRAIL, COLOR_CONE):
        for night in (False, True):
            ir = _mean_contrast(scenes, "ir", painted, night)
            vi = _mean_contrast(scenes, "vi", painted, night)
            assert vi > 4 * ir and ir < 12, (painted, night, ir, vi)
    # the visible image is darker at night, the infrared image is not
    day = [vi.mean() for _, vi, _, n in scenes if not n]
    night = [vi.mean() for _, vi, _, n in scenes if n]
    assert np.mean(night) < 0.4 * np.mean(day)
    ir_day = [ir.mean() for ir, _, _, n in scenes if not n]
    ir_night = [ir.mean() for ir, _, _, n in scenes if n]
    assert abs(np.mean(ir_day) - np.mean(ir_night)) < 15


def test_names_follow_msrs(synthetic_root):
    train = [p.name for p in list_split(synthetic_root, "train")]
    test = [p.name for p in list_split(synthetic_root, "test")]
    assert not set(train) & set(test)
    assert all(len(n) == 6 and n[:5].isdigit() and n[5] in "DN" for n in train + test)
    pair = list_split(synthetic_root, "test")[0]
    assert read_ir(pair.ir).shape == read_vi(pair.vi).shape[:2]


def test_make_synthetic_cli(tmp_path):
    script = str(REPO / "pipelines" / "make_synthetic.py")
    out = tmp_path / "set"
    run = subprocess.run(
        [sys.executable, script, "--out", str(out), "--train", "3", "--test", "2", "--seed", "5"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert len(list((out / "train" / "ir").iterdir())) == 3
    again = subprocess.run([sys.executable, script, "--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 2 and "already holds a data set" in again.stderr
