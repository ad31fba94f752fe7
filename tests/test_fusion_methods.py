"""Fusion-method registry, classic rules, external folders, the fuse stage and its pipelines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from configs.schema import ConfigError
from fusion.colour import luminance
from fusion.fuse import fuse_split
from fusion.methods import available_methods, build_method, trainable_methods
from fusion.methods.classic import fuse_gtf, gtf_objective
from msrs.layout import DataError, list_pairs, list_split, read_ir, root_splits

from .conftest import REPO, run_pipeline

CLASSIC = [name for name in available_methods() if name not in trainable_methods()]
RNG = np.random.default_rng(0)


def _scene(height=48, width=64) -> tuple[np.ndarray, np.ndarray]:
    """A smooth-ish test scene: uint8 infrared and a colourful visible image of its own."""
    yy, xx = np.mgrid[0:height, 0:width]
    ir = 128 + 80 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + RNG.normal(0, 8, (height, width))
    vi = np.stack([(xx * 3) % 256, (yy * 5) % 256, 128 + 60 * np.cos((xx + yy) / 6.0)], axis=2)
    return np.clip(ir, 0, 255).astype(np.uint8), np.clip(vi, 0, 255).astype(np.uint8)


def test_registry_lists_the_classic_methods_and_sspfusion():
    assert {"average", "max", "laplacian", "dwt", "gff", "gtf", "sspfusion"} <= set(available_methods())


@pytest.mark.parametrize("name", CLASSIC)
def test_identical_sources_give_that_source(name):
    _, vi = _scene()
    method = build_method(name)
    grey = luminance(vi)
    # grey visible equal to the infrared: the output is that grey image exactly, in RGB
    out = method.fuse(grey, np.repeat(grey[..., None], 3, axis=2))
    assert out.dtype == np.uint8 and out.shape == (*grey.shape, 3)
    assert np.abs(out.astype(int) - grey[..., None]).max() <= 1
    # colour visible, infrared = its luminance: colour comes back within 1/255 per channel
    out = method.fuse(grey, vi)
    assert np.abs(out.astype(int) - vi.astype(int)).max() <= 1, name


@pytest.mark.parametrize("name", CLASSIC)
def test_methods_fuse_real_pairs_to_rgb(name, synthetic_root):
    pair = list_split(synthetic_root, "test", labels=False)[0]
    out = build_method(name).fuse_pair(pair, "test")
    ir = read_ir(pair.ir)
    assert out.dtype == np.uint8 and out.shape == (*ir.shape, 3)


def test_average_and_max_are_what_they_say():
    ir, vi = _scene()
    vi = (vi // 4 + 96).astype(np.uint8)  # mild colours: no RGB clipping of the fused result
    y = luminance(vi).astype(float)
    assert np.abs(luminance(build_method("average").fuse(ir, vi)) - (ir + y) / 2).max() <= 1.5
    assert np.abs(luminance(build_method("max").fuse(ir, vi)) - np.maximum(ir, y)).max() <= 1.5


def test_gtf_lambda_zero_is_the_infrared_image():
    ir, vi = _scene()
    vi = (vi // 4 + 96).astype(np.uint8)  # mild colours: no RGB clipping of the fused result
    out = build_method("gtf", lam=0.0).fuse(ir, vi)
    assert np.abs(luminance(out).astype(int) - ir.astype(int)).max() <= 1
    ir_f, vi_f = ir / 255.0, luminance(vi) / 255.0
    assert np.array_equal(
        fuse_gtf(ir_f.astype(np.float32), vi_f.astype(np.float32), lam=0.0), ir_f.astype(np.float32)
    )


def test_gtf_minimises_its_objective():
    ir, vi = _scene()
    ir_f, vi_f = (ir / 255.0).astype(np.float32), (luminance(vi) / 255.0).astype(np.float32)
    lam = 4.0
    fused = fuse_gtf(ir_f, vi_f, lam=lam)
    energy = gtf_objective(fused, ir_f, vi_f, lam)
    assert energy < gtf_objective(ir_f, ir_f, vi_f, lam)  # its starting point, x = ir
    assert energy < gtf_objective(vi_f, ir_f, vi_f, lam)  # the other trivial candidate
    assert energy < gtf_objective((ir_f + vi_f) / 2, ir_f, vi_f, lam)
    # and stays within the range spanned by the sources (x = y + vi, clipped)
    assert fused.min() >= 0.0 and fused.max() <= 1.0
    # a small lambda stays close to the infrared image, a large one moves towards visible edges
    near = fuse_gtf(ir_f, vi_f, lam=0.05)
    assert np.abs(near - ir_f).mean() < np.abs(fused - ir_f).mean()


def test_fingerprint_tracks_parameters():
    assert build_method("gtf").fingerprint() == build_method("gtf").fingerprint()
    assert build_method("gtf", lam=2).fingerprint() != build_method("gtf").fingerprint()
    assert build_method("laplacian", levels=3).fingerprint() != build_method("laplacian").fingerprint()


def test_unknown_name_and_bad_option_raise_config_error():
    with pytest.raises(ConfigError) as error:
        build_method("nosuchfusion")
    message = str(error.value)
    assert "nosuchfusion" in message and "external:<folder>" in message
    assert all(name in message for name in available_methods())
    with pytest.raises(ConfigError, match="classic.py: fusion method .gtf.: its builder does not take"):
        build_method("gtf", lambda_=3)


# ----------------------------------------------------------------------------- external folders


def _write_fused(folder, pairs, grey=True, size=None):
    folder.mkdir(parents=True, exist_ok=True)
    for pair in pairs:
        ir = read_ir(pair.ir)
        image = Image.fromarray(ir) if grey else Image.fromarray(np.repeat(ir[..., None], 3, 2))
        if size is not None and pair is pairs[0]:
            image = image.resize(size)
        image.save(folder / f"{pair.name}.png")


def test_external_validator(synthetic_root, tmp_path):
    pairs = list_split(synthetic_root, "test", labels=False)
    good = tmp_path / "good"
    _write_fused(good / "test", pairs)
    _write_fused(good / "train", list_split(synthetic_root, "train", labels=False), grey=False)
    method = build_method(f"external:{good}")
    method.validate(pairs, "test")
    assert method.validate_all(synthetic_root) == {"train": 24, "test": 10}
    out = build_method(f"external:{good}", grey="keep").fuse_pair(pairs[0], "test")
    assert out.dtype == np.uint8 and out.shape[2] == 3
    assert np.array_equal(out[..., 0], read_ir(pairs[0].ir)) and np.array_equal(out[..., 0], out[..., 2])

    missing = tmp_path / "missing"
    _write_fused(missing / "test", pairs[1:])
    with pytest.raises(DataError, match=rf"1 of {len(pairs)} image\(s\) missing: {pairs[0].name}"):
        build_method(f"external:{missing}").validate(pairs, "test")

    wrong = tmp_path / "wrong"
    _write_fused(wrong / "test", pairs, size=(31, 17))
    with pytest.raises(DataError, match=rf"{pairs[0].name}.png is 31x17"):
        build_method(f"external:{wrong}").validate(pairs, "test")

    flat = tmp_path / "flat"  # no split folders: for a root with splits, refused
    _write_fused(flat, pairs)
    with pytest.raises(DataError, match="a flat folder of fused images, but the data root has splits"):
        build_method(f"external:{flat}").validate(pairs, "test")
    with pytest.raises(DataError, match="flat folder"):
        build_method(f"external:{flat}").validate_all(synthetic_root)

    suffixed = tmp_path / "suffixed"  # every split's problems in one error, with a hint at the names
    for split in ("train", "test"):
        _write_fused(suffixed / split, list_split(synthetic_root, split, labels=False))
        for path in (suffixed / split).iterdir():
            path.rename(path.with_name(f"{path.stem}_fused.png"))
    with pytest.raises(DataError) as error:
        build_method(f"external:{suffixed}").validate_all(synthetic_root)
    message = str(error.value)
    assert "split 'train': 24 of 24" in message and "split 'test': 10 of 10" in message
    assert "_fused.png is there" in message


def test_a_flat_folder_serves_a_pair_folder(photo_pairs, tmp_path):
    pairs = list_split(photo_pairs, "all", labels=False)
    _write_fused(tmp_path / "flat", pairs)
    assert build_method(f"external:{tmp_path / 'flat'}").validate_all(photo_pairs) == {"all": len(pairs)}


def test_a_name_in_two_splits_is_refused(synthetic_root, tmp_path):
    import shutil

    from msrs.layout import validate_root

    root = tmp_path / "root"
    shutil.copytree(synthetic_root, root)
    name = list_split(root, "train", labels=False)[0].name
    for folder in ("ir", "vi", "Segmentation_labels"):
        source = next((root / "train" / folder).glob(f"{name}.*"))
        shutil.copy(source, root / "test" / folder / source.name)
    with pytest.raises(DataError, match=rf"1 name\(s\) also in the split 'train' \({name}\)"):
        validate_root(root)


def test_external_fingerprint_changes_with_the_files(synthetic_root, tmp_path):
    pairs = list_split(synthetic_root, "test", labels=False)
    _write_fused(tmp_path / "ext" / "test", pairs)
    method = build_method(f"external:{tmp_path / 'ext'}")
    before = method.fingerprint()
    (tmp_path / "ext" / "test" / f"{pairs[0].name}.png").unlink()
    assert method.fingerprint() != before


# ----------------------------------------------------------------------------- fuse stage


def test_fuse_split_writes_every_pair(synthetic_root, tmp_path):
    pairs = list_split(synthetic_root, "test", labels=False)
    out = tmp_path / "fused" / "average" / "test"
    first = fuse_split(build_method("average"), pairs, out, progress=False)
    assert first["written"] == len(pairs)
    assert sorted(p.stem for p in out.glob("*.png")) == [p.name for p in pairs]
    assert not [p for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    image = Image.open(out / f"{pairs[0].name}.png")
    assert image.mode == "RGB" and image.size == Image.open(pairs[0].ir).size


def test_fuse_split_validates_external_before_writing(synthetic_root, tmp_path):
    pairs = list_split(synthetic_root, "test", labels=False)
    _write_fused(tmp_path / "ext" / "test", pairs[2:])
    with pytest.raises(DataError, match="2 of"):
        fuse_split(
            build_method(f"external:{tmp_path / 'ext'}"), pairs, tmp_path / "out" / "test", progress=False
        )
    assert not list((tmp_path / "out" / "test").glob("*.png"))


def test_pair_folder_is_one_split(photo_pairs):
    assert root_splits(photo_pairs) == ["all"]
    assert len(list_split(photo_pairs, "all")) == len(list_pairs(photo_pairs)) == 3


# ----------------------------------------------------------------------------- pipelines


@pytest.mark.slow
def test_fuse_cli_on_synthetic(synthetic_root, tmp_path):
    out = tmp_path / "exp"
    result = run_pipeline(
        "fuse.py",
        "--config",
        str(REPO / "configs" / "tiny.yaml"),
        "--method",
        "average",
        "--data-root",
        str(synthetic_root),
        "--out",
        str(out),
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for split, count in (("train", 24), ("test", 10)):
        assert len(list((out / "fused" / "average" / split).glob("*.png"))) == count
    assert "average test: 10 images" in result.stdout
    assert (out / "fused" / "average" / "done.json").is_file()
    # the same stage again is cached (one rule with run_all); --force keeps the old folder
    again = run_pipeline(
        "fuse.py",
        "--config",
        str(REPO / "configs" / "tiny.yaml"),
        "--method",
        "average",
        "--data-root",
        str(synthetic_root),
        "--out",
        str(out),
        "--no-progress",
        "--force",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "fuse:average: forced" in again.stdout
    assert len(list((out / "fused").glob("average.superseded-*-forced"))) == 1


@pytest.mark.slow
def test_evaluate_fusion_on_a_pair_folder(photo_pairs, tmp_path):
    out = tmp_path / "exp"
    result = run_pipeline(
        "evaluate_fusion.py",
        "--config",
        str(REPO / "configs" / "tiny.yaml"),
        "--methods",
        "average",
        "gff",
        "--data-root",
        str(photo_pairs),
        "--out",
        str(out),
        "--limit",
        "3",
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(out / "report" / "table1.csv")
    assert list(table["method"]) == ["Average", "GFF"]
    assert {"EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "fuse_ms", "metrics_ms"} <= set(
        table.columns
    )
    assert (out / "report" / "table1.md").is_file()
    per_image = pd.read_csv(out / "quality" / "average" / "per_image.csv")
    assert len(per_image) == 3 and per_image.columns[0] == "name"
    assert len(list((out / "fused" / "average" / "all").glob("*.png"))) == 3
