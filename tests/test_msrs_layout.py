"""The data-root readers (MSRS, MFNet, pair folders) on generated data, on real data given with
--real-data, and every validation error."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from msrs import DataError, list_pairs, list_split, read_ir, read_label, read_vi, validate_root
from msrs.layout import describe_root, detect_layout, root_splits, time_of_day, training_splits

from .conftest import REPO, run_pipeline


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


def test_reads_jpeg_pair_folders_of_any_size(photo_pairs):
    pairs = list_pairs(photo_pairs)
    assert [p.name for p in pairs] == ["astronaut", "chelsea", "coffee"]
    assert len({read_ir(pair.ir).shape for pair in pairs}) == 3  # each its own size
    for pair in pairs:
        ir, vi = pair.read_ir(), pair.read_vi()
        assert ir.ndim == 2 and vi.shape == (*ir.shape, 3)
        assert ir.dtype == vi.dtype == np.uint8


@pytest.mark.real_data
def test_reads_real_roadscene_pairs(real_data):
    pairs = list_pairs(real_data / "roadscene-50")
    assert len(pairs) == 50 and "FLIR_00211" in [p.name for p in pairs]
    for pair in pairs[:5]:
        ir, vi = read_ir(pair.ir), read_vi(pair.vi)
        assert ir.ndim == 2 and vi.shape == (*ir.shape, 3)
        assert ir.dtype == vi.dtype == np.uint8


@pytest.mark.real_data
def test_reads_real_msrs_pairs(real_data):
    root = real_data / "msrs-test-40"
    assert describe_root(root) == {
        "layout": "pairs",
        "counts": {"all": 40},
        "day_night": {"split": "all", "day": 20, "night": 20},
    }
    pairs = {pair.name: pair for pair in list_pairs(root)}
    for pair in pairs.values():
        assert read_ir(pair.ir).shape == (480, 640) and read_vi(pair.vi).shape == (480, 640, 3)
    assert read_vi(pairs["00085D"].vi).mean() > read_vi(pairs["00722N"].vi).mean()  # day, night


@pytest.mark.real_data
def test_reads_real_mfnet_release_layout(real_data):
    root = real_data / "mfnet-156"
    assert detect_layout(root) == "MFNet"
    assert validate_root(root, check_labels=True) == {"train": 98, "val": 19, "test": 39}
    assert describe_root(root)["day_night"] == {"split": "test", "day": 19, "night": 20}
    test = list_split(root, "test")
    assert [pair.name for pair in test][:2] == ["00105D", "00110D"] and all(pair.packed for pair in test)
    pair = test[0]
    ir, vi, label = pair.read_ir(), pair.read_vi(), pair.read_label()
    assert ir.shape == label.shape == (480, 640) and vi.shape == (480, 640, 3)
    rgba = np.asarray(Image.open(pair.ir))
    assert np.array_equal(ir, rgba[..., 3]) and np.array_equal(vi, rgba[..., :3])
    assert set(np.unique(label)) <= set(range(9))
    # fusion trains on train + val, never on a test pair
    assert training_splits(root) == ["train", "val"]


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


def _one_clear_error(root, corrupt, message, check_labels):
    corrupt(root)
    with pytest.raises(DataError, match=message) as error:
        validate_root(root, check_labels=check_labels)
    text = str(error.value)
    assert "\n" not in text and str(root) in text  # one line, names the file or folder


@pytest.mark.parametrize("case", CASES)
def test_each_corruption_gives_one_clear_error(copy, case):
    _one_clear_error(copy, *CASES[case])


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


# ----------------------------------------------------------------------------- MFNet layout


def test_reads_generated_mfnet_layout(mfnet_root, synthetic_root):
    assert detect_layout(mfnet_root) == "MFNet"
    assert root_splits(mfnet_root) == ["train", "val", "test"]
    assert validate_root(mfnet_root, check_labels=True) == {"train": 18, "val": 6, "test": 10}
    msrs = {pair.name: pair for pair in list_split(synthetic_root, "test")}
    for pair in list_split(mfnet_root, "test"):
        source = msrs[pair.name]
        assert np.array_equal(pair.read_ir(), source.read_ir())
        assert np.array_equal(pair.read_vi(), source.read_vi())
        assert np.array_equal(pair.read_label(), source.read_label())
    names = [pair.name for pair in list_split(mfnet_root, "test")]
    assert set(time_of_day(mfnet_root, names).values()) == {"day", "night"}


def test_mfnet_day_and_night_lists_win_over_names(mfnet_copy):
    names = (mfnet_copy / "test.txt").read_text().split()
    (mfnet_copy / "test_night.txt").write_text(names[0] + "\n")
    assert time_of_day(mfnet_copy, names) == {names[0]: "night"}
    (mfnet_copy / "test_day.txt").write_text("nosuchname\n")
    with pytest.raises(DataError, match="test_day.txt: names not in test.txt: nosuchname"):
        validate_root(mfnet_copy)


@pytest.fixture
def mfnet_copy(mfnet_root, tmp_path):
    root = tmp_path / "mfnet"
    shutil.copytree(mfnet_root, root)
    return root


def _listed(root, split="train"):
    return (root / f"{split}.txt").read_text().split()[0]


def _three_channels(root):
    path = root / "images" / f"{_listed(root)}.png"
    Image.open(path).convert("RGB").save(path)


def _in_two_lists(root):
    with open(root / "test.txt", "a") as handle:
        handle.write(_listed(root) + "\n")


MFNET_CASES = {
    "3 channels where 4 are needed": (
        _three_channels,
        r"3 channel\(s\) \(mode RGB\), but an MFNet image needs 4",
        False,
    ),
    "listed name without an image": (
        lambda r: (r / "images" / f"{_listed(r)}.png").unlink(),
        "listed in train.txt but not found",
        False,
    ),
    "listed name without a label": (
        lambda r: (r / "labels" / f"{_listed(r, 'val')}.png").unlink(),
        r"label of '\w+' \(listed in val.txt\) not found",
        False,
    ),
    "label value 12": (
        lambda r: _bad_label(r / "labels" / f"{_listed(r, 'test')}.png"),
        r"label values \[12\]",
        True,
    ),
    "missing test.txt": (lambda r: (r / "test.txt").unlink(), "test.txt: split list not found", False),
    "one name in two lists": (_in_two_lists, "listed in both train.txt and test.txt", False),
    "empty list": (lambda r: (r / "val.txt").write_text("\n"), "val.txt: empty split list", False),
    "name listed twice": (
        lambda r: (r / "train.txt").write_text(f"{_listed(r)}\n{_listed(r)}\n"),
        "listed twice",
        False,
    ),
}


@pytest.mark.parametrize("case", MFNET_CASES)
def test_each_mfnet_corruption_gives_one_clear_error(mfnet_copy, case):
    _one_clear_error(mfnet_copy, *MFNET_CASES[case])


def test_run_all_refuses_a_bad_label_before_anything_trains(mfnet_copy, tmp_path):
    _bad_label(mfnet_copy / "labels" / f"{_listed(mfnet_copy, 'test')}.png")
    result = run_pipeline(
        "run_all.py",
        "--config",
        REPO / "configs" / "tiny.yaml",
        "--data-root",
        mfnet_copy,
        "--out",
        tmp_path / "run",
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "label values [12]" in result.stderr
    assert not (tmp_path / "run" / "fusion").exists()
