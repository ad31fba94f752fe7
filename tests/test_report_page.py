"""The report page: index.md and a self-contained index.html from the report's files and facts."""

import base64
import json
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from msrs.classes import CLASS_NAMES
from pipelines.engine.report import stage_seconds
from segmentation import figures
from segmentation.report import table2, write_report
from segmentation.report_page import RunFacts, collect_facts, table2_notes, write_report_page
from segmentation.rows import Row


def _run(name, seed, base, folder):
    iou = {c: base + i for i, c in enumerate(CLASS_NAMES)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pt").write_bytes(f"weights of {name} {seed}".encode())
    return {
        "row": Row.parse(name),
        "seed": seed,
        "folder": folder,
        "metrics": {
            "per_class_iou": iou,
            "miou": float(np.mean(list(iou.values()))),
            "train_images": 24,
            "test_images": 10,
        },
    }


def _stage(key, kind, folder, seconds):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "done.json").write_text(json.dumps({"identity": "h", "seconds": seconds}))
    return SimpleNamespace(key=key, kind=kind, folder=folder)


def _report(tmp_path, real_msrs):
    out = tmp_path / "exp"
    runs = [
        _run("infrared", 0, 30, out / "segmentation" / "infrared" / "seed0"),
        _run("fused:sspfusion", 0, 60, out / "segmentation" / "fused-sspfusion" / "seed0"),
    ]
    fusion = _stage("fusion:sspfusion", "fusion", out / "fusion" / "sspfusion", 12.5)
    (fusion.folder / "model.pt").write_bytes(b"fusion weights")
    figures.miou_bars(table2(runs), fusion.folder / "preview.png")  # any PNG will do
    stages = [
        fusion,
        _stage("segmentation:infrared:seed0", "segmentation", runs[0]["folder"], 3.0),
        _stage("segmentation:fused:sspfusion:seed0", "segmentation", runs[1]["folder"], 4.0),
    ]
    quality = {"SSPFusion": pd.DataFrame({"name": ["a", "b"], "EN": [6.0, 7.0]})}
    written = write_report(out / "report", runs, quality, real_msrs=real_msrs)
    provenance = [
        {
            "input": "infrared",
            "label": "Infrared",
            "seeds": [0],
            "data": "d41d8c",
            "device": "cpu",
            "precision": "fp32",
            "wall_seconds": 3.0,
        },
        {
            "input": "fused:sspfusion",
            "label": "SSPFusion",
            "seeds": [0],
            "data": "d41d8c",
            "fusion_model": "f00d5eed",
            "fused_images": "feedbeef",
            "device": "cpu",
            "precision": "fp32",
            "wall_seconds": 4.0,
        },
    ]
    data = (
        "real MSRS data (MSRS layout) at data/MSRS: 24 train, 10 test pairs"
        if real_msrs
        else (
            "the built-in synthetic MSRS-layout scenes (MSRS layout) at runs/x/data: 24 train, 10 test pairs"
        )
    )
    facts = collect_facts(
        ["pipelines/run_all.py", "--out", "my run"],
        "seed: 0\nseeds: 1\n",
        provenance,
        stage_seconds(stages),
        data,
        real_msrs,
        fusion.folder,
    )
    facts.table2_notes = table2_notes(written["table2.md"])
    return out, written, facts, write_report_page(out / "report", written, facts)


def test_page_names_every_figure_and_holds_both_tables(tmp_path):
    out, written, facts, page = _report(tmp_path, real_msrs=True)
    report = out / "report"
    assert set(page) == {"index.md", "index.html"}
    markdown = page["index.md"].read_text()
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown)
    assert len(links) == 3  # miou, per-class, and the SSPFusion preview outside the report folder
    assert {(report / link).resolve() for link in links} == {
        written["miou.png"].resolve(),
        written["per_class_iou.png"].resolve(),
        (out / "fusion" / "sspfusion" / "preview.png").resolve(),
    }
    assert all((report / link).is_file() for link in links)
    assert "## Table 2" in markdown and "## Table 1" in markdown
    assert "The paper's Table 2" in markdown and "72.2" in markdown  # paper's SSPFusion mIoU
    assert "real MSRS data (MSRS layout) at data/MSRS: 24 train, 10 test pairs" in markdown
    # Table 2 as table2.md shows it: formatted cells, bold best, the notes below it
    assert "| SSPFusion | **60.0** |" in markdown and "One seed per input" in markdown
    assert "python pipelines/run_all.py --out 'my run'" in markdown and "seeds: 1" in markdown
    assert "infrared + visible fused by SSPFusion" in markdown
    assert "f00d5eed" in markdown and "feedbeef" in markdown  # provenance of the fused row
    assert "fusion:sspfusion" in markdown and "12.50" in markdown
    assert "Stage wall time, summed: 20 s" in markdown

    text = page["index.html"].read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == len(links)
    assert base64.b64decode(images[0]) == written["miou.png"].read_bytes()
    assert text.count("<table") == 6  # Table 2, paper rows, mIoU vs paper, Table 1, inputs, times
    assert "<td>SSPFusion</td><td><strong>60.0</strong></td>" in text
    assert 'src="/' not in text and "file:" not in text  # nothing outside the page itself


def test_synthetic_page_says_the_paper_is_not_comparable(tmp_path):
    _, _, _, page = _report(tmp_path, real_msrs=False)
    markdown = page["index.md"].read_text()
    assert "Not MSRS's test split: the paper's numbers (real MSRS, 361 test images) are not" in markdown
    assert "The paper's Table 2" not in markdown
    assert "the built-in synthetic MSRS-layout scenes" in markdown


def test_missing_figure_is_named(tmp_path):
    facts = RunFacts(command="python x", config_yaml="a: 1\n", data="d", real_msrs=False)
    with pytest.raises(FileNotFoundError, match="gone.png"):
        write_report_page(tmp_path, {"gone.png": tmp_path / "gone.png"}, facts)


def test_miou_bars_start_at_zero(tmp_path, monkeypatch):
    limits = []
    monkeypatch.setattr(
        figures, "_save", lambda figure, path: limits.append(figure.axes[0].get_ylim()) or path
    )
    frame = pd.DataFrame({"input": ["Infrared", "Visible"], "miou": [70.0, 71.0]})
    figures.miou_bars(frame, tmp_path / "m.png")
    assert limits[0][0] == 0


def test_the_page_shows_table2_cell_for_cell_as_table2_md(tmp_path):
    from html.parser import HTMLParser

    from segmentation.report import cells_from_markdown

    out, written, facts, page = _report(tmp_path, real_msrs=False)
    header, rows = cells_from_markdown(written["table2.md"].read_text())

    class FirstTable(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.cell, self.tables = [], None, 0

        def handle_starttag(self, tag, attrs):
            self.tables += tag == "table"
            if self.tables == 1 and tag == "tr":
                self.rows.append([])
            if self.tables == 1 and tag in ("td", "th"):
                self.cell = ""
            if self.tables == 1 and tag == "strong" and self.cell is not None:
                self.cell += "**"

        def handle_endtag(self, tag):
            if self.tables == 1 and tag == "strong" and self.cell is not None:
                self.cell += "**"
            if self.tables == 1 and tag in ("td", "th"):
                self.rows[-1].append(self.cell)
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parsed = FirstTable()
    parsed.feed(page["index.html"].read_text())
    assert parsed.rows[0] == header and parsed.rows[1:] == rows
    markdown = page["index.md"].read_text()
    assert all("| " + " | ".join(cells) + " |" in markdown for cells in rows)
