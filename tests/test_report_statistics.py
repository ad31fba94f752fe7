"""Table 2 with intervals, rank groups and paired significance, from runs on disk."""

import json

import numpy as np
import pandas as pd
import pytest

from segmentation.evaluate import CONFUSION_FILE, confusion_per_image, save_confusion_per_image, scores
from segmentation.report import row_evidence, seeds_note, table2, write_report
from segmentation.rows import Row

SHAPE = (40, 24, 32)  # test images, height, width


def _labels():
    rng = np.random.default_rng(0)
    return rng.integers(0, 9, SHAPE).astype(np.uint8)


def _write_run(root, input_name, seed, accuracy, evidence=True, night_accuracy=None):
    """A finished run folder whose predictions are right on ``accuracy`` of the pixels (on
    ``night_accuracy`` of them in the night images, the odd ones, when given)."""
    labels = _labels()
    rng = np.random.default_rng([seed, int(accuracy * 100), *map(ord, input_name)])
    names = [f"{i:05d}{'N' if i % 2 else 'D'}" for i in range(SHAPE[0])]
    night = np.array([name.endswith("N") for name in names])[:, None, None]
    right = np.where(night, accuracy if night_accuracy is None else night_accuracy, accuracy)
    wrong = rng.random(SHAPE) > right
    predictions = np.where(wrong, rng.integers(0, 9, SHAPE), labels).astype(np.uint8)
    folder = root / input_name.replace(":", "_") / f"seed{seed}"
    folder.mkdir(parents=True)
    if evidence:
        save_confusion_per_image(folder / CONFUSION_FILE, names, confusion_per_image(predictions, labels))
    per_image = np.stack(
        [
            np.bincount(labels[i].ravel() * 9 + predictions[i].ravel(), minlength=81).reshape(9, 9)
            for i in range(SHAPE[0])
        ]
    )
    metrics = scores(per_image.sum(0))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return {"row": Row.parse(input_name), "seed": seed, "metrics": metrics, "folder": folder}


def test_report_ranks_rows_with_intervals(tmp_path):
    runs = [_write_run(tmp_path, "infrared", s, 0.50) for s in (0, 1)]
    runs += [_write_run(tmp_path, "visible", s, 0.50) for s in (0, 1)]
    runs += [_write_run(tmp_path, "fused:sspfusion", s, 0.75) for s in (0, 1)]
    written = write_report(tmp_path / "report", runs, {}, real_msrs=False)
    table = pd.read_csv(written["table2.csv"]).set_index("input")
    assert list(table.index) == ["Infrared", "Visible", "SSPFusion"]
    for column in (
        "miou_ci_low",
        "miou_ci_high",
        "seeds",
        "rank_group",
        "vs_infrared",
        "vs_visible",
        "vs_best",
        "vs_infrared_significant",
    ):
        assert column in table
    ssp = table.loc["SSPFusion"]
    assert ssp["miou_ci_low"] < ssp["miou"] < ssp["miou_ci_high"] and ssp["seeds"] == 2
    assert ssp["rank_group"] == 1 and ssp["vs_infrared_significant"] and ssp["vs_visible_significant"]
    assert table.loc["Infrared", "rank_group"] == table.loc["Visible", "rank_group"] == 2
    markdown = written["table2.md"].read_text()
    assert "Significantly above both Infrared and Visible: SSPFusion." in markdown
    assert "Best mean mIoU (bold): SSPFusion; it is significantly better than the second" in markdown
    pairs = pd.read_csv(written["pairwise.csv"])
    assert len(pairs) == 3 and pairs.iloc[0]["a"] == "SSPFusion"
    assert written["pairwise.png"].stat().st_size > 0 and written["miou.png"].stat().st_size > 0


def test_close_rows_best_not_significantly_better(tmp_path):
    runs = [_write_run(tmp_path, "infrared", 0, 0.60), _write_run(tmp_path, "visible", 0, 0.60)]
    markdown = write_report(tmp_path / "report", runs, {}, real_msrs=False)["table2.md"].read_text()
    assert "it is NOT significantly better than the second" in markdown


def test_row_without_evidence_is_omitted_with_a_note(tmp_path):
    runs = [
        _write_run(tmp_path, "infrared", 0, 0.5),
        _write_run(tmp_path, "visible", 0, 0.6),
        _write_run(tmp_path, "fused:gtf", 0, 0.7, evidence=False),
    ]
    written = write_report(tmp_path / "report", runs, {}, real_msrs=False)
    table = pd.read_csv(written["table2.csv"]).set_index("input")
    assert np.isnan(table.loc["GTF", "miou_ci_low"]) and not np.isnan(table.loc["GTF", "miou"])
    assert not np.isnan(table.loc["Visible", "miou_ci_low"])
    markdown = written["table2.md"].read_text()
    assert f"GTF: statistics omitted, seed 0 has no per-image evidence ({CONFUSION_FILE})" in markdown
    assert "| GTF |" in markdown and "n/a" in markdown.split("| GTF |")[1].splitlines()[0]


def test_no_evidence_at_all_still_reports(tmp_path):
    runs = [
        _write_run(tmp_path, "infrared", 0, 0.5, evidence=False),
        {"row": Row("visible"), "seed": 0, "metrics": _write_run(tmp_path, "visible", 0, 0.6)["metrics"]},
    ]
    written = write_report(tmp_path / "report", runs, {}, real_msrs=False)
    assert "No per-image evidence in any row" in written["table2.md"].read_text()
    assert "miou_ci_low" not in pd.read_csv(written["table2.csv"])


def test_different_seed_counts_are_named(tmp_path):
    runs = [_write_run(tmp_path, "infrared", s, 0.5) for s in (0, 1, 2)]
    runs += [_write_run(tmp_path, "visible", 0, 0.6)]
    note = seeds_note(table2(runs))
    assert "Seed counts differ between rows (Infrared 3, Visible 1)" in note
    evidence, notes = row_evidence(runs)
    assert [row.confusion.shape[0] for row in evidence] == [3, 1] and notes == []


def test_rows_on_other_test_images_are_omitted(tmp_path):
    runs = [
        _write_run(tmp_path, "infrared", 0, 0.5),
        _write_run(tmp_path, "visible", 0, 0.6),
        _write_run(tmp_path, "fused:max", 0, 0.6),
    ]
    path = runs[2]["folder"] / CONFUSION_FILE
    with np.load(path) as saved:  # the same matrices under other image names
        renamed = {**saved, "names": np.array([f"x{i}" for i in range(SHAPE[0])])}
    np.savez_compressed(path, **renamed)
    evidence, notes = row_evidence(runs)
    assert [row.label for row in evidence] == ["Infrared", "Visible"]
    assert notes == [
        "Max: statistics omitted, its test images differ from the other rows' "
        "(paired comparisons need the same images)."
    ]


def test_unreadable_evidence_is_omitted_with_the_file_named(tmp_path):
    runs = [_write_run(tmp_path, "infrared", 0, 0.5), _write_run(tmp_path, "visible", 0, 0.6)]
    broken = runs[1]["folder"] / CONFUSION_FILE
    broken.write_bytes(b"truncated")
    evidence, notes = row_evidence(runs)
    assert [row.label for row in evidence] == ["Infrared"]
    assert len(notes) == 1 and notes[0].startswith(f"Visible: statistics omitted, {broken}")


def test_day_and_night_miou_come_from_their_own_images(tmp_path):
    runs = [_write_run(tmp_path, "infrared", 0, 0.6, night_accuracy=0.6)]
    runs += [_write_run(tmp_path, "visible", 0, 0.8, night_accuracy=0.3)]
    written = write_report(tmp_path / "report", runs, {}, real_msrs=False)
    table = pd.read_csv(written["table2.csv"]).set_index("input")
    visible = table.loc["Visible"]
    assert visible["day_images"] == visible["night_images"] == 20
    confusion = np.load(runs[1]["folder"] / CONFUSION_FILE)["confusion"]
    day = scores(confusion[0::2].sum(0))["miou"]  # the even images are the day scenes
    assert visible["miou_day"] == pytest.approx(day, abs=0.01)
    assert visible["miou_day_ci_low"] < visible["miou_day"] < visible["miou_day_ci_high"]
    assert visible["miou_night"] < 0.6 * visible["miou_day"]  # visible fails at night here
    assert visible["miou_night_ci_high"] < table.loc["Infrared", "miou_night_ci_low"]
    markdown = written["table2.md"].read_text()
    assert "| Day mIoU [95% CI] | Night mIoU [95% CI] |" in markdown
    assert "the 20 day and the 20 night test images alone" in markdown


def test_evidence_that_does_not_reproduce_metrics_stops_the_report(tmp_path):
    from segmentation.report import EvidenceError

    runs = [_write_run(tmp_path, "infrared", 0, 0.5), _write_run(tmp_path, "visible", 0, 0.8)]
    runs[1]["metrics"] = {**runs[1]["metrics"], "miou": runs[1]["metrics"]["miou"] - 3.0}  # edited
    with pytest.raises(EvidenceError, match="its confusion matrices give mIoU .* but .*metrics.json says"):
        write_report(tmp_path / "report", runs, {}, real_msrs=False)


def test_every_row_tied_for_best_is_bold_and_named(tmp_path):
    import shutil

    from segmentation.report import cells_from_markdown

    base = _write_run(tmp_path, "infrared", 0, 0.6)
    runs = [base]
    for name in ("visible", "fused:average"):
        folder = tmp_path / name.replace(":", "_") / "seed0"
        shutil.copytree(base["folder"], folder)
        runs.append({**base, "row": Row.parse(name), "folder": folder})
    runs.append(_write_run(tmp_path, "fused:max", 0, 0.3))
    markdown = write_report(tmp_path / "report", runs, {}, real_msrs=False)["table2.md"].read_text()
    assert "Best mean mIoU (bold): Infrared, Visible and Average tie; Infrared is the row" in markdown
    header, rows = cells_from_markdown(markdown)
    miou = header.index("mIoU")
    assert [row[0] for row in rows] == ["Infrared", "Visible", "Average", "Max"]
    assert [row[miou].startswith("**") for row in rows] == [True, True, True, False]


def test_a_report_warns_when_nothing_was_learned(tmp_path):
    labels = _labels()
    runs = []
    for name in ("infrared", "visible"):
        folder = tmp_path / name / "seed0"
        folder.mkdir(parents=True)
        background = np.zeros_like(labels)  # every pixel predicted background
        names = [f"{i:05d}D" for i in range(SHAPE[0])]
        save_confusion_per_image(folder / CONFUSION_FILE, names, confusion_per_image(background, labels))
        metrics = scores(confusion_per_image(background, labels).sum(0).numpy())
        runs.append({"row": Row.parse(name), "seed": 0, "metrics": metrics, "folder": folder})
    runs.append(_write_run(tmp_path, "fused:sspfusion", 0, 0.7))
    markdown = write_report(tmp_path / "report", runs, {}, real_msrs=False)["table2.md"].read_text()
    assert "Warning: Infrared, Visible predict(s) background only" in markdown
    assert "Warning: no row finds" not in markdown  # SSPFusion finds every class


def test_the_pairwise_colours_keep_noise_pale():
    from segmentation.figures import DIFFERENCE_FLOOR, colour_limit

    noise = np.array([[np.nan, 0.00075], [-0.00075, np.nan]])
    assert colour_limit(noise) == DIFFERENCE_FLOOR == 1.0
    assert colour_limit(np.array([[np.nan, 4.0], [-4.0, np.nan]])) == 4.0


def test_a_report_warns_of_a_class_no_row_finds(tmp_path):
    labels = _labels()
    names = [f"{i:05d}D" for i in range(SHAPE[0])]
    runs = []
    for name in ("infrared", "visible"):
        folder = tmp_path / name / "seed0"
        folder.mkdir(parents=True)
        predictions = np.where(labels == 3, 0, labels).astype(np.uint8)  # bike never found
        confusion = confusion_per_image(predictions, labels)
        save_confusion_per_image(folder / CONFUSION_FILE, names, confusion)
        runs.append(
            {"row": Row.parse(name), "seed": 0, "metrics": scores(confusion.sum(0).numpy()), "folder": folder}
        )
    markdown = write_report(tmp_path / "report", runs, {}, real_msrs=False)["table2.md"].read_text()
    assert f"Warning: no row finds bike (in {SHAPE[0]} test images)" in markdown
    assert "background only" not in markdown
