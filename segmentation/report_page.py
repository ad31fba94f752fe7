"""The report page: ``<report>/index.md`` and the same content as a self-contained ``index.html``.

A run leaves CSV tables, PNG figures and ``done.json`` files in many folders; the page puts what a
reader needs on one screen: what data went in, Table 2 (beside the paper's numbers on real MSRS),
Table 1, every figure, what each Table 2 row was trained on and from what (the report's
provenance), the wall time of every stage, and the command and resolved configuration that produced it all.

The page is built from what the report already wrote (Table 2's cells as ``table2.md`` shows
them, ``table1.csv``, ``table2_vs_paper.csv``, the PNGs) plus :class:`RunFacts`, so it renders
whatever columns those tables have. Markdown links figures relatively; the HTML embeds them
(base64), so the file can be mailed or archived alone. Both files are written atomically.
"""

from __future__ import annotations

import base64
import html
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from runtime.files import write_text_atomic
from segmentation.report import cells_from_markdown, load_paper_table2
from segmentation.rows import Row

FIGURE_TITLES = {
    "miou.png": "mIoU per input (bars start at zero)",
    "per_class_iou.png": "Per-class IoU (%)",
    "pairwise.png": "Paired mIoU differences, row minus column (* significant at 95%, Holm)",
}


def figure_title(name: str) -> str:
    """The caption of a report figure by its file name."""
    if name.startswith("qualitative-"):
        image = name.removeprefix("qualitative-").removesuffix(".png")
        return f"Test image {image}: each row's input and prediction"
    return FIGURE_TITLES.get(name, name)


@dataclass
class RunFacts:
    """What the tables cannot say about a run."""

    command: str  # the command line, shell-quoted
    config_yaml: str  # the resolved configuration
    data: str  # one sentence: which data (real or synthetic, layout, pairs per split, day/night), where
    real_msrs: bool  # real MSRS: the paper's Table 2 is put beside this run's
    table2_notes: list[str] = field(default_factory=list)  # what table2.md says below its table
    inputs: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per Table 2 row
    stage_seconds: pd.DataFrame = field(default_factory=pd.DataFrame)  # stage, kind, seconds
    figures: dict[str, Path] = field(default_factory=dict)  # title -> PNG outside the report


def describe_input(row: Row) -> str:
    """Infrared -> "infrared images", GTF -> "infrared + visible fused by GTF"."""
    if not row.method:
        return f"{row.kind} images"
    return f"infrared + visible fused by {row.label}"


def describe_data(data_root: Path, synthetic: bool) -> str:
    """One sentence: real or synthetic, the layout, pairs per split, day and night test scenes,
    and where (``msrs.layout.describe_root``)."""
    from msrs.layout import describe_root

    facts = describe_root(data_root)
    kind = "the built-in synthetic MSRS-layout scenes" if synthetic else f"real {facts['layout']} data"
    counts = ", ".join(f"{count} {split}" for split, count in facts["counts"].items())
    times = facts["day_night"]
    return (
        f"{kind} ({facts['layout']} layout) at {data_root}: {counts} pairs; {times['split']}: "
        f"{times['day']} day and {times['night']} night scenes"
    )


def table2_notes(path: Path) -> list[str]:
    """The paragraphs table2.md has below its table (seeds, statistics, provenance), up to its
    next section."""
    notes, table_seen = [], False
    for line in path.read_text().splitlines():
        if line.startswith("|"):
            table_seen = True
        elif line.startswith("## ") and table_seen:
            break
        elif table_seen and line.strip() and not line.startswith("#"):
            notes.append(line)
    return notes


def collect_facts(
    argv: list[str],
    config_yaml: str,
    provenance: list[dict],
    stage_seconds: list[dict],
    data: str,
    real_msrs: bool,
    fusion_folder: Path | None = None,
) -> RunFacts:
    """Facts of a run_all run: ``provenance`` holds one record per Table 2 row (``input``, ``label``,
    ``seeds``, ``data``, ``fusion_model``, ``fused_images``, ``device``, ``precision``,
    ``wall_seconds``, as the report stage writes to provenance.json), ``stage_seconds`` one
    ``{stage, kind, seconds}`` per finished stage, ``data`` the sentence of
    :func:`describe_data` and ``fusion_folder`` the SSPFusion training folder (its
    ``preview.png`` becomes a figure)."""
    inputs = pd.DataFrame(
        [
            {
                "row": row["label"],
                "trained on": describe_input(Row.parse(row["input"], row["label"])),
                "seeds": ", ".join(map(str, row["seeds"])),
                "data": row.get("data") or "",
                "fusion model": row.get("fusion_model") or "",
                "fused images": row.get("fused_images") or "",
                "device": row.get("device"),
                "precision": row.get("precision"),
                "wall time (s)": row.get("wall_seconds"),
            }
            for row in provenance
        ]
    )
    figures = {}
    if fusion_folder is not None and (fusion_folder / "preview.png").is_file():
        figures["SSPFusion after training: infrared | visible Y | fused (training pairs)"] = (
            fusion_folder / "preview.png"
        )
    return RunFacts(
        command=shlex.join(["python", *argv]),
        config_yaml=config_yaml,
        data=data,
        real_msrs=real_msrs,
        inputs=inputs,
        stage_seconds=pd.DataFrame(stage_seconds),
        figures=figures,
    )


def _read_csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


def _sections(folder: Path, figure_paths: list[tuple[str, Path]], facts: RunFacts) -> list:
    """The page as (heading, blocks) pairs; a block is a paragraph (str), a table (DataFrame),
    formatted cells (("cells", header, rows)), a figure ((title, path)) or a code block
    (("code", text))."""
    total = pd.to_numeric(facts.stage_seconds.get("seconds", pd.Series(dtype=float))).sum()
    overview = [
        f"Data: {facts.data}.",
        f"Stage wall time, summed: {total:.0f} s (cached stages count the time of the run that made them).",
    ]
    sections = [("Run", overview)]

    table2 = []
    if (folder / "table2.md").is_file():
        header, rows = cells_from_markdown((folder / "table2.md").read_text())
        table2 = [("cells", header, rows), *facts.table2_notes]
        if len(header) > 12:
            table2.insert(0, f"Table 2 has {len(header)} columns: scroll it sideways for the last ones.")
    vs_paper = _read_csv(folder / "table2_vs_paper.csv")
    if facts.real_msrs and vs_paper is not None and len(vs_paper):
        table2 += ["The paper's Table 2, rows this run also has:"]
        paper = load_paper_table2()
        table2 += [paper.loc[paper.index.intersection(vs_paper["input"].unique())].reset_index()]
        miou = vs_paper[vs_paper["column"] == "miou"].drop(columns="column")
        table2 += ["mIoU, ours against the paper's:", miou]
    elif not facts.real_msrs:
        table2 += [
            "Not MSRS's test split: the paper's numbers (real MSRS, 361 test images) are not "
            "comparable and are not put beside these (they are in configs/reference/table2_paper.csv)."
        ]
    sections.append(("Table 2: segmentation IoU (%) per input", table2))
    table1 = _read_csv(folder / "table1.csv")
    if table1 is not None:
        sections.append(("Table 1: fusion quality, mean over the test split", [table1]))
    sections.append(("Figures", figure_paths))
    sections.append(("What each row was trained on", [facts.inputs]))
    sections.append(("Wall time per stage", [facts.stage_seconds]))
    sections.append(
        (
            "How to reproduce",
            ["Command:", ("code", facts.command), "Resolved configuration:", ("code", facts.config_yaml)],
        )
    )
    return sections


def _markdown(title: str, sections: list, folder: Path) -> str:
    lines = [f"# {title}", ""]
    for heading, blocks in sections:
        lines += [f"## {heading}", ""]
        for block in blocks:
            if isinstance(block, pd.DataFrame):
                lines.append(block.to_markdown(index=False, floatfmt=".2f") if len(block) else "(none)")
            elif isinstance(block, tuple) and block[0] == "cells":
                _, header, rows = block
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "---|" * len(header))
                lines += ["| " + " | ".join(cells) + " |" for cells in rows]
            elif isinstance(block, tuple) and block[0] == "code":
                lines += ["```", block[1].rstrip(), "```"]
            elif isinstance(block, tuple):
                link = Path(os.path.relpath(block[1], folder)).as_posix()
                lines.append(f"![{block[0]}]({link})")
            else:
                lines.append(block)
            lines.append("")
    return "\n".join(lines)


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
    "color:#222}table{border-collapse:collapse;margin:.5em 0;font-size:.9em;display:block;"
    "overflow-x:scroll;max-width:100%}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
    "th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}"
    "img{max-width:100%;border:1px solid #ddd}"
    "pre{background:#f6f6f6;padding:.8em;overflow-x:auto}figure{margin:1em 0}"
)


def _html_cells(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table of formatted cells; Markdown **bold** becomes <strong>."""

    def cell(text: str, tag: str) -> str:
        escaped = html.escape(text)
        if text.startswith("**") and "**" in text[2:]:
            bold, rest = text[2:].split("**", 1)
            escaped = f"<strong>{html.escape(bold)}</strong>{html.escape(rest)}"
        return f"<{tag}>{escaped}</{tag}>"

    head = "<tr>" + "".join(cell(text, "th") for text in header) + "</tr>"
    body = "".join("<tr>" + "".join(cell(text, "td") for text in cells) + "</tr>" for cells in rows)
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def _html(title: str, sections: list) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for heading, blocks in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for block in blocks:
            if isinstance(block, pd.DataFrame):
                parts.append(
                    block.to_html(index=False, float_format=lambda v: f"{v:.2f}", na_rep="n/a", border=0)
                    if len(block)
                    else "<p>(none)</p>"
                )
            elif isinstance(block, tuple) and block[0] == "cells":
                parts.append(_html_cells(block[1], block[2]))
            elif isinstance(block, tuple) and block[0] == "code":
                parts.append(f"<pre><code>{html.escape(block[1].rstrip())}</code></pre>")
            elif isinstance(block, tuple):
                data = base64.b64encode(Path(block[1]).read_bytes()).decode("ascii")
                parts.append(
                    f'<figure><img alt="{html.escape(block[0])}" '
                    f'src="data:image/png;base64,{data}">'
                    f"<figcaption>{html.escape(block[0])}</figcaption></figure>"
                )
            else:
                parts.append(f"<p>{html.escape(block)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report_page(
    folder: str | Path, written: dict[str, Path], facts: RunFacts, title: str = "fusionseg-bench report"
) -> dict[str, Path]:
    """Write ``index.md`` and ``index.html`` into the report ``folder`` from the files the
    report wrote (``written``: name -> path) and ``facts``; returns their paths by name."""
    folder = Path(folder)
    figures = [
        (figure_title(name), Path(path)) for name, path in written.items() if str(path).endswith(".png")
    ]
    figures += [(caption, Path(path)) for caption, path in facts.figures.items()]
    missing = [str(path) for _, path in figures if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"report figures not found: {', '.join(missing)}")
    sections = _sections(folder, figures, facts)
    return {
        "index.md": write_text_atomic(folder / "index.md", _markdown(title, sections, folder)),
        "index.html": write_text_atomic(folder / "index.html", _html(title, sections)),
    }


__all__ = ["RunFacts", "collect_facts", "describe_input", "write_report_page"]
