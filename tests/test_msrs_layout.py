"""The MSRS reader on generated data and on real RoadScene pairs, and every validation error."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from msrs import DataError, list_pairs, list_split, read_ir, read_label, read_vi, validate_root

from .conftest import REPO


def test_reads_generated_msrs_layout(synthetic_root):
    assert validate_root(synthetic_root, check_labels=True) == {"train": 24, "test": 10}
    pairs = list_split(synthetic_root, "train")
    assert [p.name for p in pairs] == sorted(p.name for p in pairs)
    assert pairs[0].name[-1] in "DN" and pairs[0].label is not None
    ir, vi, label = read_ir(pairs[0].ir), read_vi(pairs[0].vi), read_label(pairs[0].label)
    assert ir.shape == (64, 80) and ir.dtype == np.uint8
    assert vi.shape == (64, 80, 3) and vi.dtype == np.uint8
    assert label.shape == (64, 80) and label.dtype == np.uint8
    classes = set()
    for pair in pairs:
        classes |= set(np.unique(read_label(pair.label)).tolist())
    assert classes == set(range(9))


def test_reads_real_roadscene_pairs(roadscene):
    pairs = list_pairs(roadscene)
    assert [p.name for p in pairs] == ["FLIR_00211", "FLIR_00977", "FLIR_01130"]
    for pair in pairs:
        ir, vi = read_ir(pair.ir), read_vi(pair.vi)
        assert ir.ndim == 2 and vi.shape == (*ir.shape, 3)
        assert ir.dtype == vi.dtype == np.uint8


def test_reads_real_msrs_pairs(msrs_pairs):
    pairs = list_pairs(msrs_pairs)
    assert [p.name for p in pairs] == ["00085D", "00722N"]
    for pair in pairs:
        ir, vi = read_ir(pair.ir), read_vi(pair.vi)
        assert ir.shape == (480, 640) and vi.shape == (480, 640, 3)
        assert ir.dtype == vi.dtype == np.uint8
    day, night = (read_vi(pair.vi).mean() for pair in pairs)
    assert day > night  # 00085D is a day scene, 00722N a night one


@pytest.fixture
def copy(synthetic_root, tmp_path):
    root = tmp_path / "msrs"
    shutil.copytree(synthetic_root, root)
    return root


def _first(root, sub="vi", split="train"):
    return sorted((root / split / sub).iterdir())[0]


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path):
    path.write_bytes(b"this is not an image")


def _resize(path):
    Image.open(path).resize((40, 30)).save(path)


def _bad_label(path):
    label = np.array(Image.open(path))
    label[0, 0] = 12
    Image.fromarray(label).save(path)


CASES = {
    "missing root": (lambda r: shutil.rmtree(r), "data root not found", False),
    "missing split": (lambda r: shutil.rmtree(r / "test"), "split folder not found", False),
    "name missing in vi": (lambda r: _first(r).unlink(), "vi: missing 1 name", False),
    "name missing in label": (
        lambda r: _first(r, "Segmentation_labels").unlink(),
        "Segmentation_labels: missing 1 name",
        False,
    ),
    "unreadable image": (lambda r: _garbage(_first(r, "ir")), "unreadable image", False),
    "truncated image": (lambda r: _truncate(_first(r, "vi")), "truncated PNG", False),
    "size mismatch": (lambda r: _resize(_first(r, "vi")), "sizes differ", False),
    "label out of range": (
        lambda r: _bad_label(_first(r, "Segmentation_labels")),
        r"label values \[12\] outside 0..8",
        True,
    ),
    "empty split": (
        lambda r: [
            p.unlink() for s in ("ir", "vi", "Segmentation_labels") for p in (r / "train" / s).iterdir()
        ],
        "empty",
        False,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_each_corruption_gives_one_clear_error(copy, case):
    corrupt, message, check_labels = CASES[case]
    corrupt(copy)
    with pytest.raises(DataError, match=message) as error:
        validate_root(copy, check_labels=check_labels)
    text = str(error.value)
    assert "\n" not in text and str(copy) in text  # one line, names the file or folder


def test_label_values_unchecked_without_the_option(copy):
    _bad_label(_first(copy, "Segmentation_labels"))
    validate_root(copy)  # header-level validation does not decode labels


def test_validate_data_cli(copy):
    script = str(REPO / "pipelines" / "validate_data.py")
    ok = subprocess.run([sys.executable, script, "--data-root", str(copy)], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: ") and "train: 24, test: 10" in ok.stdout
    _truncate(_first(copy, "ir", "test"))
    bad = subprocess.run([sys.executable, script, "--data-root", str(copy)], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "truncated PNG" in bad.stderr
    assert "Traceback" not in bad.stderr
