"""What a user types wrong gets one line and exit code 2, and nothing is written: run_all's
selectors, dry runs, overrides as people type them, output folders, devices, configs."""

import pandas as pd
import pytest
import torch

from configs.schema import ConfigError, load_config
from msrs.synthetic import is_synthetic, write_synthetic
from pipelines.engine.layout import check_out_folder

from .conftest import REPO, run_pipeline_here

TINY = str(REPO / "configs" / "tiny.yaml")


def _run_all(*args):
    return run_pipeline_here("run_all.py", *args)


def _one_line_error(result, *fragments):
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--only", "bogus"], ["--only bogus: matches no stage", "input=visible", "fuse:average"]),
        (["--only", "input=fused:gtf"], ["--only input=fused:gtf: matches no stage"]),
        (["--only", "fusion:nosuch"], ["--only fusion:nosuch: matches no stage"]),
        (["--force", "bogus"], ["--force bogus: matches no stage"]),
        (["--set", "segmentation.batch_size=0"], ["segmentation.batch_size: must be >= 1, got 0"]),
        (["--set", "segmentation.epochs=-1"], ["segmentation.epochs: must be >= 1, got -1"]),
        (["--set", "runtime.device=gpu"], ["runtime.device: must be auto, cpu, cuda or cuda:N, got 'gpu'"]),
        (["--config", str(REPO / "configs" / "paper.yaml")], ["is for real data and has no data root"]),
    ],
)
def test_run_all_refuses_in_one_line_and_writes_nothing(tmp_path, args, fragments):
    out = tmp_path / "run"
    result = _run_all("--config", TINY, "--out", str(out), "--dry-run", *args)
    _one_line_error(result, *fragments)
    assert not out.exists()


def test_dry_run_writes_nothing_and_accepts_numbers_and_switches_as_typed(tmp_path):
    out = tmp_path / "run"
    result = _run_all(
        "--config",
        TINY,
        "--out",
        str(out),
        "--dry-run",
        "--set",
        "segmentation.lr=2e-2",
        "--set",
        "runtime.cudnn_benchmark=off",
        "--set",
        "runtime.amp=off",
        "--set",
        "runtime.channels_last=on",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "new     segmentation:visible:seed0" in result.stdout
    assert not out.exists()  # no synthetic scenes, no digest memo, no stage folder


def test_numbers_and_switches_as_people_type_them():
    config = load_config(TINY, ["segmentation.lr=2e-2", "fusion.lr=5E-4", "runtime.cudnn_benchmark=off"])
    assert config.segmentation.lr == 0.02 and config.fusion.lr == 0.0005
    assert config.runtime.cudnn_benchmark == "off"
    with pytest.raises(ConfigError, match="expected true/false, got 'off'"):
        load_config(TINY, ["fusion.use_spf=off"])


@pytest.mark.parametrize("case", ["file", "under a file"])
def test_out_that_cannot_be_a_folder(tmp_path, case):
    file = tmp_path / "a file"
    file.write_text("x")
    out = file if case == "file" else file / "sub"
    result = _run_all("--config", TINY, "--out", str(out), "--dry-run")
    _one_line_error(result, f"--out {out}")


def test_out_that_cannot_be_written(tmp_path, monkeypatch):
    monkeypatch.setattr("os.access", lambda path, mode: False)  # root may write anywhere
    with pytest.raises(ConfigError, match="is not writable"):
        check_out_folder(tmp_path / "run")


def test_a_binary_config_names_the_file(tmp_path):
    config = tmp_path / "weights.yaml"
    config.write_bytes(bytes(range(256)))
    _one_line_error(_run_all("--config", str(config), "--dry-run"), f"{config}: not a text file")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda(tmp_path):
    result = _run_all("--config", TINY, "--out", str(tmp_path / "run"), "--set", "runtime.device=cuda")
    _one_line_error(result, "runtime.device: 'cuda' but no CUDA device is available")


@pytest.mark.parametrize("jobs", ["0", "-1"])
def test_jobs_must_be_positive(tmp_path, jobs):
    result = _run_all("--config", TINY, "--out", str(tmp_path / "run"), "--jobs", jobs)
    assert result.returncode == 2 and "--jobs must be at least 1" in result.stderr


def test_only_has_help():
    result = _run_all("--help")
    assert "input=NAME (one Table 2 row" in " ".join(result.stdout.split())


def test_a_pair_folder_cannot_be_segmented(photo_pairs, tmp_path):
    result = _run_all(
        "--config", TINY, "--data-root", str(photo_pairs), "--out", str(tmp_path / "r"), "--dry-run"
    )
    _one_line_error(result, "a fusion-only pair folder (ir/ vi/, no labels) cannot be segmented")


def test_a_data_root_that_is_a_file(tmp_path):
    file = tmp_path / "MSRS.zip"
    file.write_bytes(b"PK")
    result = _run_all("--config", TINY, "--data-root", str(file), "--out", str(tmp_path / "r"), "--dry-run")
    _one_line_error(result, f"{file}: data root is a file, not a folder")


def test_synthetic_by_what_it_is(tmp_path, synthetic_root, photo_pairs):
    made = write_synthetic(tmp_path / "by hand", train=2, test=2, height=32, width=40, seed=3)
    assert is_synthetic(made) and is_synthetic(synthetic_root)  # make_synthetic.py's too
    assert not is_synthetic(photo_pairs)


def test_numeric_image_names_stay_out_of_table_1():
    from segmentation.report import table1

    frame = pd.DataFrame({"name": [0, 1, 2], "EN": [6.0, 7.0, 8.0]})  # 00000.jpg, 00001.jpg ...
    assert list(table1({"average": frame}).columns) == ["method", "EN", "images"]


def test_tied_rows_agree_everywhere():
    import numpy as np

    from segmentation.report import statistics_notes
    from segmentation.statistics import RowEvidence, best_versus_second, compare_rows

    rng = np.random.default_rng(0)
    confusion = rng.integers(1, 50, (1, 20, 9, 9))
    names = [f"{i}" for i in range(20)]
    rows = [RowEvidence(label, [0], confusion, names) for label in ("Infrared", "Visible")]
    comparison = compare_rows(rows)
    assert best_versus_second(comparison)[:2] == ("Infrared", "Visible")  # the first of the tie
    assert any("Infrared and Visible tie" in note for note in statistics_notes(comparison))


def test_missing_external_image_names_every_accepted_extension(synthetic_root, tmp_path):
    from fusion.methods import build_method
    from msrs.layout import DataError, list_split

    (tmp_path / "ext").mkdir()
    with pytest.raises(DataError, match=r"<name>\.<png\|jpg\|jpeg"):
        build_method(f"external:{tmp_path / 'ext'}").validate(list_split(synthetic_root, "test"), "test")


def test_only_the_tools_own_errors_are_one_line_a_bug_keeps_its_traceback(capsys):
    import sys

    sys.path.insert(0, str(REPO / "pipelines"))
    import _common

    with pytest.raises(SystemExit) as stopped:
        _common.run_main(lambda: (_ for _ in ()).throw(ConfigError("seeds: must be >= 1")))
    assert stopped.value.code == 2 and capsys.readouterr().err == "error: seeds: must be >= 1\n"
    with pytest.raises(ValueError, match="a bug"):  # not turned into one line
        _common.run_main(lambda: (_ for _ in ()).throw(ValueError("a bug")))


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--seeds", "0"], "error: --seeds 0: seeds: must be >= 1, got 0"),
        (
            ["--set", "segmentation.epochs=three"],
            "error: --set segmentation.epochs=three: segmentation.epochs:",
        ),
    ],
)
def test_a_bad_value_is_blamed_on_the_option_that_gave_it(args, expected, tmp_path):
    result = run_pipeline_here("run_all.py", "--config", TINY, "--out", tmp_path / "run", *args, "--dry-run")
    assert result.returncode == 2 and result.stderr.startswith(expected), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_config_file_error_names_the_file_line_and_extends(tmp_path):
    child = tmp_path / "my.yaml"
    child.write_text("extends: tiny.yaml\nseeds: 2\n")
    with pytest.raises(
        ConfigError, match=rf"{child}: extends: tiny.yaml: no such file {tmp_path / 'tiny.yaml'}"
    ):
        load_config(child)
    broken = tmp_path / "broken.yaml"
    broken.write_text("seeds: [1\nname: x\n")
    with pytest.raises(ConfigError) as error:
        load_config(broken)
    assert str(error.value).startswith(f"{broken}: not valid YAML (line 2, column 5: ")
    assert "\n" not in str(error.value)


def test_a_dry_run_refuses_what_the_run_refuses(tmp_path):
    out = tmp_path / "new"
    only = run_pipeline_here(
        "run_all.py", "--config", TINY, "--out", out, "--only", "input=fused:average", "--dry-run"
    )
    assert only.returncode == 2 and "reads fuse:average" in only.stderr, only.stderr
    encoder = run_pipeline_here(
        "run_all.py", "--config", TINY, "--out", out, "--set", "segmentation.encoder=resnet999", "--dry-run"
    )
    assert encoder.returncode == 2 and "segmentation.encoder: unknown encoder 'resnet999'" in encoder.stderr
    assert not out.exists()
