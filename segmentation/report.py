"""Table 2: per-class IoU and mIoU per input, mean and standard deviation over seeds.

Rows follow the paper's Table 2 order (Infrared, Visible, the paper's baselines in its order,
then methods the paper does not have, SSPFusion last); columns are the nine MSRS class names
(``msrs.classes.CLASS_NAMES``), ``miou`` and, when there is more than one seed, a ``*_std`` column for each.
The paper's own numbers (configs/reference/table2_paper.csv) can be put side by side.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from msrs.classes import CLASS_NAMES

PAPER_TABLE2 = Path(__file__).resolve().parents[1] / "configs" / "reference" / "table2_paper.csv"
PAPER_ORDER = ("Infrared", "Visible", "GTF", "DIDFuse", "AUIF", "RFN-Nest", "U2Fusion", "DeFusion",
               "UMF", "TarDAL", "DDFM", "ITFuse", "CMTFusion", "SSPFusion")
# the paper's column names, in MSRS label order
PAPER_COLUMNS = ("Background", "Car", "Person", "Bike", "Curve", "CarStop", "Guardrail",
                 "ColorCone", "Bump")
_DISPLAY = {"infrared": "Infrared", "visible": "Visible", "sspfusion": "SSPFusion", "gtf": "GTF",
            "average": "Average", "max": "Max", "laplacian": "Laplacian", "dwt": "DWT",
            "gff": "GFF", "tif": "TIF"}
COLUMNS = [*CLASS_NAMES, "miou"]


EXTERNAL_SUFFIX = " (external)"


def display_name(input_name: str) -> str:
    """``infrared`` -> Infrared, ``fused:gtf`` -> GTF, ``fused:external:/x/DDFM`` ->
    ``DDFM (external)``: images made elsewhere never share a row name with a built-in method."""
    name = input_name.removeprefix("fused:")
    if name.startswith("external:"):
        name = Path(name.removeprefix("external:").rstrip("/")).name
        paper = {n.lower(): n for n in PAPER_ORDER}
        return paper.get(name.lower(), name) + EXTERNAL_SUFFIX
    return _DISPLAY.get(name, name)


def paper_name(label: str) -> str:
    """The paper's row a display name stands for: ``DDFM (external)`` -> ``DDFM``."""
    return label.removesuffix(EXTERNAL_SUFFIX)


def _order_key(label: str, position: int) -> tuple:
    label = paper_name(label)
    if label == "SSPFusion":
        return (2, 0)
    if label in PAPER_ORDER:
        return (0, PAPER_ORDER.index(label))
    return (1, position)


def table2(runs: list[dict]) -> pd.DataFrame:
    """``runs``: dicts with ``input`` (name), ``seed`` and ``metrics`` (a metrics.json payload:
    ``per_class_iou`` class -> IoU %, ``miou`` %). Returns one row per input with the mean over
    seeds, ``*_std`` columns (sample std, ddof=1) when any input has more than one seed,
    ``seeds`` (how many runs each row averages) and ``colour`` (``grey`` or ``colour``: what the
    network saw, metrics.json's ``colour``; empty for runs that predate it)."""
    if not runs:
        raise ValueError("no finished segmentation runs to report")
    records = []
    for run in runs:
        iou = run["metrics"]["per_class_iou"]
        row = {"input": display_name(run["input"]), "seed": run["seed"]}
        row.update({name: float(iou[name]) if iou.get(name) is not None else np.nan
                    for name in CLASS_NAMES})
        row["miou"] = float(run["metrics"]["miou"])
        row["colour"] = run["metrics"].get("colour", "")
        records.append(row)
    frame = pd.DataFrame.from_records(records)
    order = list(dict.fromkeys(frame["input"]))
    grouped = frame.groupby("input", sort=False)[COLUMNS]
    table = grouped.mean()
    if frame.groupby("input").size().max() > 1:
        std = grouped.std(ddof=1).add_suffix("_std")
        table = table.join(std)
    table["seeds"] = frame.groupby("input").size()
    table["colour"] = frame.groupby("input")["colour"].agg(lambda modes: "/".join(sorted(set(modes))))
    ranked = sorted(order, key=lambda label: _order_key(label, order.index(label)))
    return table.loc[ranked].reset_index()


def to_markdown(table: pd.DataFrame, digits: int = 1) -> str:
    """Markdown with mean +- std per cell and the best value of each column in bold (none in a
    column where every input scores 0: nothing was learned there, so nothing is best)."""
    has_std = any(column.endswith("_std") for column in table.columns)
    show_colour = "colour" in table.columns and table["colour"].astype(bool).any()
    header = ["Input", *CLASS_NAMES, "mIoU", *(["Colour"] if show_colour else [])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {column: table[column].max(skipna=True) for column in COLUMNS}
    for _, row in table.iterrows():
        cells = [str(row["input"])]
        for column in COLUMNS:
            value = row[column]
            if pd.isna(value):
                cells.append("n/a")
                continue
            text = f"{value:.{digits}f}"
            if has_std and not pd.isna(row.get(f"{column}_std")):
                text += f" ± {row[f'{column}_std']:.{digits}f}"
            if np.isclose(value, best[column]) and best[column] > 0 and len(table) > 1:
                text = f"**{text}**"
            cells.append(text)
        if show_colour:
            cells.append(str(row["colour"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def seeds_note(table: pd.DataFrame) -> str:
    seeds = int(table["seeds"].min())
    if seeds == 1:
        return ("One seed per input: differences of a few tenths of a point (the size of the gaps "
                "in the paper's Table 2) cannot rank methods; rerun with --seeds 3 or more.")
    return f"Mean ± sample standard deviation over {seeds} seeds per input."


def load_paper_table2(path: str | Path = PAPER_TABLE2) -> pd.DataFrame:
    """The paper's Table 2 with our column names (class names, ``miou``), indexed by method."""
    paper = pd.read_csv(path)
    paper = paper.rename(columns=dict(zip(PAPER_COLUMNS, CLASS_NAMES, strict=True)) | {"mIoU": "miou"})
    return paper.set_index("method")


def compare_with_paper(table: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our mean IoUs, the paper's, and ours minus the paper's, for rows the paper also has."""
    paper = load_paper_table2() if paper is None else paper
    rows = []
    for _, row in table.iterrows():
        if paper_name(row["input"]) not in paper.index:
            continue
        reference = paper.loc[paper_name(row["input"])]
        for column in COLUMNS:
            rows.append({"input": row["input"], "column": column, "ours": row[column],
                         "paper": reference[column], "difference": row[column] - reference[column]})
    return pd.DataFrame(rows, columns=["input", "column", "ours", "paper", "difference"])


def table1(quality: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Fusion-quality means over the test split, one row per method (``quality``: method ->
    per-image metrics frame)."""
    rows = []
    for method, frame in quality.items():
        numeric = frame.select_dtypes("number")
        rows.append({"method": display_name(method), **numeric.mean().to_dict(),
                     "images": len(frame)})
    return pd.DataFrame(rows)


def write_report(folder: str | Path, runs: list[dict], quality: dict[str, pd.DataFrame],
                 real_msrs: bool, notes: list[str] | None = None, data_root: Path | None = None,
                 fused_dirs: dict[str, Path] | None = None, examples: int = 3) -> dict[str, Path]:
    """Write table2.csv/md, table1.csv/md, the figures and (on real MSRS) the comparison with
    the paper into ``folder``; returns the written paths by name. With ``data_root`` (and the
    test folders of the fused images, method -> folder) the qualitative figure is drawn too."""
    from configs.runtime import write_text_atomic
    from segmentation import figures

    folder = Path(folder)
    written: dict[str, Path] = {}
    table = table2(runs)
    written["table2.csv"] = write_text_atomic(folder / "table2.csv",
                                              table.to_csv(index=False, float_format="%.2f"))
    text = ["# Table 2: segmentation IoU (%) per input", "", to_markdown(table), seeds_note(table)]
    text += notes or []
    if real_msrs:
        comparison = compare_with_paper(table)
        written["table2_vs_paper.csv"] = write_text_atomic(
            folder / "table2_vs_paper.csv", comparison.to_csv(index=False, float_format="%.2f"))
        miou = comparison[comparison["column"] == "miou"]
        text += ["", "## mIoU against the paper's Table 2", "",
                 miou.to_markdown(index=False, floatfmt=".1f") if len(miou) else
                 "(no row of this run is in the paper's table)"]
    else:
        text += ["", "Data: the built-in synthetic scenes, so the paper's numbers (real MSRS) are "
                 "not put beside these."]
    written["table2.md"] = write_text_atomic(folder / "table2.md", "\n".join(text) + "\n")
    if quality:
        fusion_table = table1(quality)
        written["table1.csv"] = write_text_atomic(
            folder / "table1.csv", fusion_table.to_csv(index=False, float_format="%.4f"))
        written["table1.md"] = write_text_atomic(
            folder / "table1.md", "# Table 1: fusion quality, mean over the test split\n\n"
            + fusion_table.to_markdown(index=False, floatfmt=".3f") + "\n")
    written["miou.png"] = figures.miou_bars(table, folder / "miou.png")
    written["per_class_iou.png"] = figures.class_heatmap(table, folder / "per_class_iou.png")
    if data_root is not None and examples > 0:
        written["qualitative.png"] = qualitative_figure(folder / "qualitative.png", data_root, runs,
                                                        fused_dirs or {}, examples)
    return written


def pick_examples(pairs: list, count: int) -> list:
    """Test pairs for the qualitative figure: alternately the night and day scenes showing the
    most classes (night first: that is where infrared matters)."""
    from msrs.layout import read_label

    ranked = sorted(pairs, key=lambda p: (-len(np.unique(read_label(p.label))), p.name))
    night = [p for p in ranked if p.name.endswith("N")]
    day = [p for p in ranked if not p.name.endswith("N")]
    chosen = []
    while len(chosen) < count and (night or day):
        for group in (night, day):
            if group and len(chosen) < count:
                chosen.append(group.pop(0))
    return chosen


def qualitative_figure(path: str | Path, data_root: Path, runs: list[dict],
                       fused_dirs: dict[str, Path], count: int = 3) -> Path:
    """The paper's Figure 11 for this run: per test image, infrared, visible, each method's fused
    image, the ground truth and the prediction of every input's first-seed model."""
    import torch

    from msrs.layout import list_split, read_ir, read_label, read_vi
    from segmentation import figures
    from segmentation.evaluate import predict
    from segmentation.train import load_trained

    examples = pick_examples(list_split(data_root, "test", labels=True), count)
    first = {}
    for run in sorted(runs, key=lambda r: r["seed"]):
        first.setdefault(run["input"], run)
    inputs: dict[str, np.ndarray] = {}
    for pair in examples:
        inputs.setdefault("infrared", []).append(np.repeat(read_ir(pair.ir)[..., None], 3, axis=2))
        inputs.setdefault("visible", []).append(read_vi(pair.vi))
        for method, folder in fused_dirs.items():
            inputs.setdefault(f"fused:{method}", []).append(read_vi(folder / f"{pair.name}.png"))
    inputs = {name: np.stack(images) for name, images in inputs.items()}
    predictions = {}
    for name, run in first.items():
        if name in inputs and (run["folder"] / "model.pt").is_file():
            model = load_trained(run["folder"] / "model.pt")
            predictions[name] = predict(model, inputs[name], torch.device("cpu"))
    rows = []
    for index, pair in enumerate(examples):
        panels = [("Infrared", inputs["infrared"][index][..., 0]), ("Visible", inputs["visible"][index])]
        panels += [(display_name(f"fused:{m}"), inputs[f"fused:{m}"][index]) for m in fused_dirs]
        panels.append(("GT", read_label(pair.label)))
        panels += [(f"pred {display_name(name)}", maps[index]) for name, maps in predictions.items()]
        rows.append({"name": pair.name, "panels": panels})
    return figures.qualitative(rows, path)
