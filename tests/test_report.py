"""Table 2 assembly, markdown, paper comparison and figures from metrics.json payloads."""

import numpy as np
import pandas as pd
import pytest

from msrs.classes import CLASS_NAMES
from segmentation.report import (
    compare_with_paper,
    load_paper_table2,
    table2,
    to_markdown,
    write_report,
)
from segmentation.rows import Row


def _run(name, seed, base):
    iou = {c: base + i for i, c in enumerate(CLASS_NAMES)}
    return {
        "row": Row.parse(name),
        "seed": seed,
        "metrics": {"per_class_iou": iou, "miou": float(np.mean(list(iou.values())))},
    }


def test_paper_reference_columns_and_mean():
    paper = load_paper_table2()
    assert list(paper.columns) == [*CLASS_NAMES, "miou"]
    # the paper's mIoU column is the mean of its nine class columns (to rounding)
    assert np.allclose(paper[list(CLASS_NAMES)].mean(axis=1), paper["miou"], atol=0.11)


def test_rows_in_paper_order_mean_and_std():
    runs = [
        _run("fused:sspfusion", 0, 60),
        _run("fused:average", 0, 50),
        _run("visible", 0, 40),
        _run("infrared", 0, 30),
        _run("fused:gtf", 0, 45),
        _run("infrared", 1, 32),
    ]
    table = table2(runs)
    assert list(table["input"]) == ["Infrared", "Visible", "GTF", "Average", "SSPFusion"]
    infrared = table.set_index("input").loc["Infrared"]
    assert infrared["background"] == pytest.approx(31) and infrared["seeds"] == 2
    assert infrared["miou_std"] == pytest.approx(np.std([34, 36], ddof=1))
    assert np.isnan(table.set_index("input").loc["Visible", "miou_std"])
    markdown = to_markdown(table)
    assert "**64.0**" in markdown and "31.0 ± 1.4" in markdown


def test_column_where_every_input_scores_zero_has_no_best():
    runs = [_run("infrared", 0, 30), _run("visible", 0, 40)]
    for run in runs:
        run["metrics"]["per_class_iou"]["car_stop"] = 0.0
    rows = to_markdown(table2(runs)).splitlines()[2:]
    column = 1 + CLASS_NAMES.index("car_stop") + 1
    assert [row.split("|")[column].strip() for row in rows] == ["0.0", "0.0"]
    assert "**" in rows[1]  # visible is still best elsewhere


def test_external_names_map_to_paper_rows():
    assert Row.parse("fused:external:/data/fused/ddfm/").label == "DDFM (external)"
    assert Row.parse("fused:external:/x/MyNewFusion").label == "MyNewFusion (external)"
    assert Row.parse("fused:external:/x/SSPFusion").label != Row.parse("fused:sspfusion").label
    assert Row.parse("infrared").label == "Infrared"


def test_compare_with_paper_difference():
    table = table2([_run("fused:sspfusion", 0, 60)])
    comparison = compare_with_paper(table)
    row = comparison[comparison["column"] == "miou"].iloc[0]
    assert row["paper"] == pytest.approx(72.2)
    assert row["difference"] == pytest.approx(64.0 - 72.2)
    external = compare_with_paper(table2([_run("fused:external:/x/DDFM", 0, 60)]))
    assert set(external["input"]) == {"DDFM (external)"}  # still beside the paper's DDFM


def test_write_report_files(tmp_path):
    runs = [_run("infrared", 0, 30), _run("visible", 0, 40), _run("fused:sspfusion", 0, 60)]
    quality = {"sspfusion": pd.DataFrame({"name": ["a", "b"], "EN": [6.0, 7.0], "SSIM": [1, 1.2]})}
    written = write_report(tmp_path, runs, quality, real_msrs=True)
    for name in (
        "table2.csv",
        "table2.md",
        "table1.csv",
        "table1.md",
        "miou.png",
        "per_class_iou.png",
        "table2_vs_paper.csv",
    ):
        assert (tmp_path / name).is_file() and name in written
    csv = pd.read_csv(tmp_path / "table2.csv")
    assert list(csv.columns[:11]) == ["input", *CLASS_NAMES, "miou"]
    assert "One seed per input" in (tmp_path / "table2.md").read_text()
    assert pd.read_csv(tmp_path / "table1.csv").loc[0, "EN"] == pytest.approx(6.5)


def test_empty_report_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no finished segmentation runs"):
        write_report(tmp_path, [], {}, real_msrs=False)
