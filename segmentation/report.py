"""Table 2: per-class IoU and mIoU per input, mean and standard deviation over seeds, and how
sure each mIoU and each difference between rows is (segmentation.statistics).

Rows follow the paper's Table 2 order (Infrared, Visible, the paper's baselines in its order,
then methods the paper does not have, SSPFusion last); columns are the nine MSRS class names
(``msrs.classes.CLASS_NAMES``), ``miou`` and, when there is more than one seed, a ``*_std`` column for each.
The paper's own numbers (configs/reference/table2_paper.csv) can be put side by side.

With the runs' per-image confusion matrices, :func:`add_statistics` adds per row the 95%
interval of mIoU (``miou_ci_low``/``miou_ci_high``), its rank group, and its paired
difference to Infrared, Visible and the best row with a flag for significance (Holm over all
pairs, see segmentation.statistics). Rows without that evidence (runs made before it was
saved) keep their means; their statistics are left empty and the report says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from msrs.classes import CLASS_NAMES
from msrs.layout import DataError, time_of_day
from segmentation.evaluate import CONFUSION_FILE, load_confusion_per_image
from segmentation.rows import INFRARED, PAPER_ORDER, Row, paper_name
from segmentation.statistics import (
    Comparison,
    RowEvidence,
    best_versus_second,
    compare_rows,
    miou_from_confusion,
    ranked,
)

REFERENCE = Path(__file__).resolve().parents[1] / "configs" / "reference"
PAPER_TABLE2 = REFERENCE / "table2_paper.csv"
# the paper's fusion-quality tables on MSRS (Table 1: methods; Table 4: w/o F, w/o P; Table 6:
# loss weights), one row per method by its Table 1 row name
PAPER_FUSION_TABLES = {
    "table1": "table1_msrs_paper.csv",
    "table4": "table4_msrs_paper.csv",
    "table6": "table6_msrs_paper.csv",
}
PAPER_FUSION_METRICS = ("MI", "SF", "AG", "VIF", "Qabf", "SSIM")  # the columns the paper prints
# the paper's column names, in MSRS label order
PAPER_COLUMNS = ("Background", "Car", "Person", "Bike", "Curve", "CarStop", "Guardrail", "ColorCone", "Bump")
COLUMNS = [*CLASS_NAMES, "miou"]
TIMES = ("day", "night")  # test images by the time of day of their scene (msrs.layout.time_of_day)
REFERENCES = ("Infrared", "Visible")  # every row is compared with these and with the best row
_DIFFERENCE_COLUMNS = (*REFERENCES, "best")


def _order_key(label: str, position: int) -> tuple:
    label = paper_name(label)
    if label == "SSPFusion":
        return (2, 0)
    if label in PAPER_ORDER:
        return (0, PAPER_ORDER.index(label))
    return (1, position)


def table2(runs: list[dict]) -> pd.DataFrame:
    """``runs``: dicts with ``row`` (:class:`~segmentation.rows.Row`), ``seed`` and ``metrics``
    (a metrics.json payload: ``per_class_iou`` class -> IoU %, ``miou`` %). Returns one line per
    row with the mean over seeds, ``*_std`` columns (sample std, ddof=1) when any row has more
    than one seed, ``seeds`` (how many runs each row averages) and ``colour`` (``grey`` or
    ``colour``: what the network saw, metrics.json's ``colour``; empty for runs that predate it)."""
    if not runs:
        raise DataError("no finished segmentation runs to report")
    records = []
    for run in runs:
        iou = run["metrics"]["per_class_iou"]
        row = {"input": run["row"].label, "seed": run["seed"]}
        row.update({name: float(iou[name]) if iou.get(name) is not None else np.nan for name in CLASS_NAMES})
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


def _flag(value) -> bool:
    """A significance cell as read back from table2.csv (True, False, NaN or a string)."""
    return not pd.isna(value) and str(value) == "True"


def _statistics_cells(row: pd.Series, table: pd.DataFrame, digits: int) -> list[str]:
    """95% CI, rank group and the differences to Infrared, Visible and the best row (* where
    significant) of one row; "n/a" where the row has no statistics."""
    if pd.isna(row.get("miou_ci_low")):
        return ["n/a"] * (2 + len(_DIFFERENCE_COLUMNS))
    cells = [f"[{row['miou_ci_low']:.{digits}f}, {row['miou_ci_high']:.{digits}f}]", str(row["rank_group"])]
    compared = table[table["miou_ci_low"].notna()]
    itself = {row["input"]}  # no difference of a row to itself
    if row["input"] == compared.loc[compared["miou"].idxmax(), "input"]:
        itself.add("best")
    for name in _DIFFERENCE_COLUMNS:
        column = f"vs_{name.lower()}"
        if column not in table or pd.isna(row[column]) or name in itself:
            cells.append("–")
            continue
        star = "*" if _flag(row[f"{column}_significant"]) else ""
        cells.append(f"{row[column]:+.{digits}f}{star}")
    return cells


TIE = 1e-6  # points of IoU: two values closer than this are a tie (bold alike, named alike)


def is_tie(a: float, b: float) -> bool:
    return abs(a - b) <= TIE


def _bold_if_best(text: str, value: float, best: float, rows: int) -> str:
    return f"**{text}**" if is_tie(value, best) and best > 0 and rows > 1 else text


def table2_cells(table: pd.DataFrame, digits: int = 1) -> tuple[list[str], list[list[str]]]:
    """(header, rows of cell texts) of Table 2 as a reader sees it: mean ± std per cell, the best
    value of each column in **bold** (none in a column where every input scores 0: nothing was
    learned there, so nothing is best); with statistics (:func:`add_statistics`) the mIoU's 95%
    CI, rank group and paired differences; with day and night columns
    (:func:`add_time_of_day`) their mIoU and interval. What table2.md and the report page show."""
    has_std = any(column.endswith("_std") for column in table.columns)
    show_colour = "colour" in table.columns and table["colour"].fillna("").astype(bool).any()
    has_statistics = "miou_ci_low" in table
    times = [time for time in TIMES if f"miou_{time}" in table]
    header = ["Input", *CLASS_NAMES, "mIoU"]
    if has_statistics:
        header += ["mIoU 95% CI", "Group", *(f"vs {name}" for name in _DIFFERENCE_COLUMNS)]
    header += [f"{time.capitalize()} mIoU [95% CI]" for time in times]
    if show_colour:
        header.append("Colour")
    best = {column: table[column].max(skipna=True) for column in [*COLUMNS, *(f"miou_{t}" for t in times)]}
    rows = []
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
            cells.append(_bold_if_best(text, value, best[column], len(table)))
        if has_statistics:
            cells += _statistics_cells(row, table, digits)
        for time in times:
            value, low, high = (row.get(f"miou_{time}{part}") for part in ("", "_ci_low", "_ci_high"))
            if pd.isna(value):
                cells.append("n/a")
                continue
            text = _bold_if_best(f"{value:.{digits}f}", value, best[f"miou_{time}"], len(table))
            cells.append(text + (f" [{low:.{digits}f}, {high:.{digits}f}]" if not pd.isna(low) else ""))
        if show_colour:
            cells.append(str(row["colour"]))
        rows.append(cells)
    return header, rows


def to_markdown(table: pd.DataFrame, digits: int = 1) -> str:
    """Table 2 as Markdown (:func:`table2_cells`)."""
    header, rows = table2_cells(table, digits)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def cells_from_markdown(text: str) -> tuple[list[str], list[list[str]]]:
    """(header, rows of cell texts) of the first table in Markdown ``text`` (table2.md's, as
    :func:`to_markdown` wrote it): the report page shows these cells, not cells formatted again
    from the rounded table2.csv."""
    lines = [line for line in text.splitlines()]
    start = next(index for index, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return table[0], table[2:]


def seeds_note(table: pd.DataFrame) -> str:
    counts = table.set_index("input")["seeds"].astype(int)
    if counts.nunique() > 1:
        listed = ", ".join(f"{label} {count}" for label, count in counts.items())
        return (
            f"Seed counts differ between rows ({listed}): each row's mean, std and interval "
            "use its own seeds, so rows with fewer seeds are less certain than they look."
        )
    seeds = int(counts.iloc[0])
    if seeds == 1:
        return (
            "One seed per input: the intervals below cover the test images only, not "
            "training noise; rerun with --seeds 5 or more to include it."
        )
    text = f"Mean ± sample standard deviation over {seeds} seeds per input."
    if seeds < 5:
        text += (
            f" {seeds} seeds estimate training noise from {seeds - 1} degree(s) of freedom: the "
            "intervals include it, but fewer than 5 seeds cannot support claims about it."
        )
    return text


class EvidenceError(DataError):
    """A run's per-image evidence does not reproduce its metrics.json: the table and its
    statistics would disagree, so no report is written."""


def _row_confusion(row_runs: list[dict]) -> tuple[np.ndarray, list[str]]:
    """(seeds, images, C, C) confusion matrices of one row's runs (sorted by seed) and the test
    image names; ValueError saying what is missing or inconsistent, :class:`EvidenceError` when
    a run's matrices do not give its metrics.json mIoU."""
    matrices, names = [], None
    for run in row_runs:
        path = Path(run["folder"]) / CONFUSION_FILE if "folder" in run else None
        if path is None or not path.is_file():
            raise DataError(f"seed {run['seed']} has no per-image evidence ({CONFUSION_FILE})")
        confusion, seed_names = load_confusion_per_image(path)
        reproduced = float(miou_from_confusion(confusion.sum(0)))
        if not np.isclose(reproduced, run["metrics"]["miou"], rtol=0, atol=1e-6):
            raise EvidenceError(
                f"{path}: its confusion matrices give mIoU {reproduced:.4f} but "
                f"{Path(run['folder']) / 'metrics.json'} says {run['metrics']['miou']:.4f}; "
                "rerun that stage (run_all --force its key)"
            )
        if names is not None and seed_names != names:
            raise DataError(f"seed {run['seed']} was tested on other images than seed {row_runs[0]['seed']}")
        matrices.append(confusion)
        names = seed_names
    return np.stack(matrices), names


def row_evidence(runs: list[dict]) -> tuple[list[RowEvidence], list[str]]:
    """Per-image confusion matrices per Table 2 row (runs' ``folder``/CONFUSION_FILE, seeds in
    order), and a note for each row left out: a seed without the file (a run made before it was
    saved) or unreadable, or test images that differ from the other rows'."""
    by_row: dict[str, list[dict]] = {}
    for run in runs:
        by_row.setdefault(run["row"].label, []).append(run)
    evidence, notes = [], []
    for label, row_runs in by_row.items():
        row_runs = sorted(row_runs, key=lambda run: run["seed"])
        try:
            confusion, names = _row_confusion(row_runs)
        except EvidenceError:
            raise
        except DataError as problem:  # missing or unreadable evidence: the row keeps no statistics
            notes.append(f"{label}: statistics omitted, {problem}.")
            continue
        evidence.append(RowEvidence(label, [run["seed"] for run in row_runs], confusion, names))
    if evidence:  # pairing needs one set of test images: keep the most common one
        common = pd.Series([tuple(row.names) for row in evidence]).value_counts().index[0]
        for row in [row for row in evidence if tuple(row.names) != common]:
            notes.append(
                f"{row.label}: statistics omitted, its test images differ from the "
                "other rows' (paired comparisons need the same images)."
            )
        evidence = [row for row in evidence if tuple(row.names) == common]
    return evidence, notes


def add_statistics(table: pd.DataFrame, comparison: Comparison) -> pd.DataFrame:
    """``table`` with the interval, rank group and paired differences of each row that
    ``comparison`` covers (NaN / empty for the others)."""
    table = table.copy()
    position = {label: i for i, label in enumerate(comparison.labels)}
    rows = [position.get(label) for label in table["input"]]

    def column(values, missing=np.nan):
        return [values[i] if i is not None else missing for i in rows]

    table["miou_ci_low"] = column(comparison.ci_low)
    table["miou_ci_high"] = column(comparison.ci_high)
    table["rank_group"] = pd.array(column(comparison.rank_group, None), dtype="Int64")
    best = int(np.argmax(comparison.miou))
    targets = {name.lower(): position.get(name) for name in REFERENCES} | {"best": best}
    for name, target in targets.items():
        if target is None:
            continue
        table[f"vs_{name}"] = column(comparison.difference[:, target])
        significant = column(comparison.significant[:, target], None)
        table[f"vs_{name}_significant"] = pd.array(significant, dtype="boolean")
    return table


def add_time_of_day(table: pd.DataFrame, evidence: list[RowEvidence], times: dict[str, str]) -> pd.DataFrame:
    """``table`` with each row's mIoU on the day and on the night test images (``times``: image
    name -> day / night) and its 95% interval over those images alone
    (``miou_day``, ``miou_day_ci_low``, ``miou_day_ci_high``, the same for night), as
    RGB-thermal segmentation papers report them; rows without evidence get NaN."""
    table = table.copy()
    if not evidence:
        return table
    names = evidence[0].names
    for time in TIMES:
        chosen = [i for i, name in enumerate(names) if times.get(name) == time]
        if not chosen:
            continue
        subset = [
            RowEvidence(row.label, row.seeds, row.confusion[:, chosen], [row.names[i] for i in chosen])
            for row in evidence
        ]
        comparison = compare_rows(subset)
        position = {label: i for i, label in enumerate(comparison.labels)}
        for part, values in (
            ("", comparison.miou),
            ("_ci_low", comparison.ci_low),
            ("_ci_high", comparison.ci_high),
        ):
            table[f"miou_{time}{part}"] = [
                values[position[label]] if label in position else np.nan for label in table["input"]
            ]
        table[f"{time}_images"] = len(chosen)
    return table


def pairwise_table(comparison: Comparison) -> pd.DataFrame:
    """Every pair of rows once (``a`` above ``b`` in mean mIoU): difference a - b, its 95%
    interval, p-value, Holm-adjusted p-value and significance."""
    records = []
    order = ranked(comparison)
    for first, i in enumerate(order):
        for j in order[first + 1 :]:
            records.append(
                {
                    "a": comparison.labels[i],
                    "b": comparison.labels[j],
                    "difference": comparison.difference[i, j],
                    "ci_low": comparison.difference_low[i, j],
                    "ci_high": comparison.difference_high[i, j],
                    "p": comparison.p_value[i, j],
                    "p_holm": comparison.p_holm[i, j],
                    "significant": bool(comparison.significant[i, j]),
                }
            )
    return pd.DataFrame(
        records, columns=["a", "b", "difference", "ci_low", "ci_high", "p", "p_holm", "significant"]
    )


def statistics_notes(comparison: Comparison) -> list[str]:
    """The method in one paragraph, whether the best row is significantly better than the
    second, and which rows beat both single modalities."""
    pairs = len(comparison.labels) * (len(comparison.labels) - 1) // 2
    notes = [
        f"mIoU 95% CI: for the mIoU over the test split's classes on images like its "
        f"{comparison.images}, from each image's share of each class's IoU (the delta method: no "
        "resampling, so every class of the test split counts in every estimate; a class in a few "
        "images has its image-to-image variance moderated towards the object classes' pooled "
        "one); a row with several seeds adds the between-seed variance (a t interval with "
        "seeds - 1 degrees of freedom). Differences (vs Infrared, vs Visible, vs the "
        "best row) are paired: image by image, and seeds by value over the seeds both rows have. "
        "* = significant at 95% after Holm's "
        f"correction over all {pairs} pairs of rows. Group g: g - 1 rows are significantly "
        "better than this one, nothing more (two rows of one group are not shown to be equal); "
        "pairwise.csv has every pair."
    ]
    verdict = best_versus_second(comparison)
    if verdict is not None:
        best, second, significant = verdict
        i, j = comparison.index(best), comparison.index(second)
        detail = (
            f"{comparison.difference[i, j]:+.1f}, 95% CI [{comparison.difference_low[i, j]:+.1f}, "
            f"{comparison.difference_high[i, j]:+.1f}], Holm p = {comparison.p_holm[i, j]:.3g}"
        )
        tied = [
            label
            for label, miou in zip(comparison.labels, comparison.miou, strict=True)
            if is_tie(miou, comparison.miou[i])
        ]
        if len(tied) > 1:
            notes.append(
                f"Best mean mIoU (bold): {', '.join(tied[:-1])} and {tied[-1]} tie; {best} is the row "
                f"the vs-best column is taken against ({detail})."
            )
        else:
            notes.append(
                f"Best mean mIoU (bold): {best}; it is "
                f"{'significantly' if significant else 'NOT significantly'} better than the "
                f"second, {second} ({detail})."
            )
    references = [comparison.labels.index(name) for name in REFERENCES if name in comparison.labels]
    if len(references) == len(REFERENCES):
        others = [i for i in range(len(comparison.labels)) if i not in references]
        beats = [
            comparison.labels[i]
            for i in others
            if all(comparison.significant[i, r] and comparison.difference[i, r] > 0 for r in references)
        ]
        fails = [comparison.labels[i] for i in others if comparison.labels[i] not in beats]
        if beats:
            notes.append("Significantly above both Infrared and Visible: " + ", ".join(beats) + ".")
        if fails:
            notes.append("Not shown to beat both Infrared and Visible at 95%: " + ", ".join(fails) + ".")
    return notes


LEARNED_NOTHING_IMAGES = 5  # a class in at least this many test images that no row finds is warned of


def learning_warnings(table: pd.DataFrame, evidence: list[RowEvidence]) -> list[str]:
    """Warnings for results that say nothing was learned: rows whose predictions are background
    only (every other class at IoU 0), and classes present in at least
    :data:`LEARNED_NOTHING_IMAGES` test images that score 0 in every row."""
    others = [name for name in CLASS_NAMES[1:] if name in table]
    scored = table[others].fillna(0)
    blind = list(table.loc[(scored == 0).all(axis=1), "input"])
    warnings = []
    if blind:
        warnings.append(
            "Warning: " + ", ".join(blind) + " predict(s) background only (every other class at IoU 0): "
            "nothing was learned there; train longer or check the data."
        )
    if evidence:
        present = (evidence[0].confusion[0].sum(axis=2) > 0).sum(axis=0)  # images holding each class
        missed = [
            f"{name} (in {present[index]} test images)"
            for index, name in enumerate(CLASS_NAMES)
            if index > 0
            and present[index] >= LEARNED_NOTHING_IMAGES
            and name in table
            and (table[name].fillna(0) == 0).all()
        ]
        if missed:
            warnings.append("Warning: no row finds " + ", ".join(missed) + ": its IoU is 0 in every row.")
    return warnings


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
            rows.append(
                {
                    "input": row["input"],
                    "column": column,
                    "ours": row[column],
                    "paper": reference[column],
                    "difference": row[column] - reference[column],
                }
            )
    return pd.DataFrame(rows, columns=["input", "column", "ours", "paper", "difference"])


def table1(quality: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Fusion-quality means over the test split, one row per method (``quality``: method ->
    per-image metrics frame)."""
    rows = []
    for label, frame in quality.items():
        numeric = frame.drop(columns="name", errors="ignore").select_dtypes("number")  # 00000.jpg
        rows.append({"method": label, **numeric.mean().to_dict(), "images": len(frame)})
    return pd.DataFrame(rows)


def fusion_vs_paper(ours: pd.DataFrame, table: str) -> pd.DataFrame:
    """The rows of Table 1 (``ours``, :func:`table1`) that the paper's fusion-quality table
    ``table`` (a key of :data:`PAPER_FUSION_TABLES`) holds, matched by row name: each of the
    paper's metrics as ours and the paper's."""
    paper = pd.read_csv(REFERENCE / PAPER_FUSION_TABLES[table]).set_index("method")
    records = []
    for _, row in ours.iterrows():
        name = paper_name(row["method"])
        if name in paper.index:
            record = {"method": row["method"]}
            for metric in PAPER_FUSION_METRICS:
                record[metric] = row[metric]
                record[f"{metric} paper"] = paper.loc[name, metric]
            records.append(record)
    return pd.DataFrame(
        records, columns=["method", *(f"{m}{s}" for m in PAPER_FUSION_METRICS for s in ("", " paper"))]
    )


def against_base(comparison: Comparison, pairs: dict[str, str]) -> list[str]:
    """One Markdown line per ``pairs`` entry (variant row -> the row of its base method, both
    Table 2 labels): the paired mIoU difference variant minus base, its 95% interval and whether
    it is significant after Holm's correction over all pairs (:func:`pairwise_table`)."""
    lines = []
    for variant, base in pairs.items():
        if variant not in comparison.labels or base not in comparison.labels:
            lines.append(f"- {variant} - {base}: not compared (one of the rows has no per-image evidence)")
            continue
        i, j = comparison.index(variant), comparison.index(base)
        verdict = "significant" if comparison.significant[i, j] else "not significant"
        lines.append(
            f"- {variant} - {base}: {comparison.difference[i, j]:+.2f} mIoU "
            f"[{comparison.difference_low[i, j]:+.2f}, {comparison.difference_high[i, j]:+.2f}], "
            f"p = {comparison.p_value[i, j]:.3g}, Holm p = {comparison.p_holm[i, j]:.3g}: {verdict}"
        )
    return lines


def write_report(
    folder: str | Path,
    runs: list[dict],
    quality: dict[str, pd.DataFrame],
    real_msrs: bool,
    notes: list[str] | None = None,
    data_root: Path | None = None,
    fused_dirs: dict[Row, Path] | None = None,
    examples: int = 3,
    data: str = "the built-in synthetic scenes",
    paper_fusion_table: str | None = None,
    against: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Write table2.csv/md, table1.csv/md, the figures and (on real MSRS) the comparison with
    the paper into ``folder``; returns the written paths by name. With ``data_root`` (and the
    test folders of the fused images, row -> folder) the qualitative figures are drawn too.
    ``data`` says which data it is where the paper's numbers are not put beside these.
    ``paper_fusion_table`` (:data:`PAPER_FUSION_TABLES`) puts that table of the paper beside
    Table 1 (table1_vs_paper.csv and in table1.md); ``against`` (variant row -> its base's row)
    adds each variant's paired mIoU difference to its base to table2.md."""
    from runtime.files import write_text_atomic
    from segmentation import figures

    folder = Path(folder)
    written: dict[str, Path] = {}
    table = table2(runs)
    evidence, statistics_text = row_evidence(runs)
    order = list(table["input"])
    evidence.sort(key=lambda row: order.index(row.label))  # heat map and pairs in table order
    comparison = compare_rows(evidence) if evidence else None
    if comparison is not None:
        table = add_statistics(table, comparison)
        statistics_text = statistics_notes(comparison) + statistics_text
        if against:
            statistics_text += ["", "Variants against their base method (paired, as above):", ""]
            statistics_text += against_base(comparison, against)
        table = add_time_of_day(table, evidence, time_of_day(data_root, evidence[0].names))
        counts = {time: table[f"{time}_images"].iloc[0] for time in TIMES if f"{time}_images" in table}
        if counts:
            statistics_text.append(
                "Day and night mIoU: the "
                + " and the ".join(f"{count} {time}" for time, count in counts.items())
                + " test images alone, each with its own 95% interval."
            )
        written["pairwise.csv"] = write_text_atomic(
            folder / "pairwise.csv", pairwise_table(comparison).to_csv(index=False, float_format="%.4g")
        )
        written["pairwise.png"] = figures.pairwise_heatmap(comparison, folder / "pairwise.png")
    else:
        statistics_text.append("No per-image evidence in any row: no intervals or significance.")
    statistics_text = learning_warnings(table, evidence) + statistics_text
    written["table2.csv"] = write_text_atomic(
        folder / "table2.csv", table.to_csv(index=False, float_format="%.2f")
    )
    text = [
        "# Table 2: segmentation IoU (%) per input",
        "",
        to_markdown(table),
        seeds_note(table),
        "",
        *statistics_text,
    ]
    text += notes or []
    if real_msrs:
        comparison = compare_with_paper(table)
        written["table2_vs_paper.csv"] = write_text_atomic(
            folder / "table2_vs_paper.csv", comparison.to_csv(index=False, float_format="%.2f")
        )
        miou = comparison[comparison["column"] == "miou"]
        text += [
            "",
            "## mIoU against the paper's Table 2",
            "",
            miou.to_markdown(index=False, floatfmt=".1f")
            if len(miou)
            else "(no row of this run is in the paper's table)",
        ]
    else:
        text += [
            "",
            f"Data: {data}; not MSRS's test split, so the paper's numbers (real MSRS) are "
            "not put beside these.",
        ]
    written["table2.md"] = write_text_atomic(folder / "table2.md", "\n".join(text) + "\n")
    if quality:
        fusion_table = table1(quality)
        written["table1.csv"] = write_text_atomic(
            folder / "table1.csv", fusion_table.to_csv(index=False, float_format="%.4f")
        )
        text1 = [
            "# Table 1: fusion quality, mean over the test split",
            "",
            fusion_table.to_markdown(index=False, floatfmt=".3f"),
        ]
        if paper_fusion_table:
            beside = fusion_vs_paper(fusion_table, paper_fusion_table)
            written["table1_vs_paper.csv"] = write_text_atomic(
                folder / "table1_vs_paper.csv", beside.to_csv(index=False, float_format="%.4f")
            )
            number = paper_fusion_table.removeprefix("table")
            text1 += [
                "",
                f"## Against the paper's Table {number} (MSRS)",
                "",
                beside.to_markdown(index=False, floatfmt=".3f")
                if len(beside)
                else "(no row of this run is in it)",
                "",
                "The paper's values are on MSRS's test split"
                + (
                    "."
                    if real_msrs
                    else f"; ours on {data}: compare the ordering of the rows, not the values."
                ),
            ]
        written["table1.md"] = write_text_atomic(folder / "table1.md", "\n".join(text1) + "\n")
    written["miou.png"] = figures.miou_bars(table, folder / "miou.png")
    written["per_class_iou.png"] = figures.class_heatmap(table, folder / "per_class_iou.png")
    if data_root is not None and examples > 0:
        written |= qualitative_figures(folder, data_root, runs, fused_dirs or {}, examples)
    return written


def pick_examples(pairs: list, count: int, times: dict[str, str]) -> list:
    """Test pairs for the qualitative figures: alternately the night and day scenes (``times``:
    name -> day / night) showing the most classes (night first: that is where infrared
    matters)."""
    ranked = sorted(pairs, key=lambda p: (-len(np.unique(p.read_label())), p.name))
    night = [p for p in ranked if times.get(p.name) == "night"]
    day = [p for p in ranked if times.get(p.name) != "night"]
    chosen = []
    while len(chosen) < count and (night or day):
        for group in (night, day):
            if group and len(chosen) < count:
                chosen.append(group.pop(0))
    return chosen


def qualitative_figures(
    folder: str | Path, data_root: Path, runs: list[dict], fused_dirs: dict[Row, Path], count: int = 3
) -> dict[str, Path]:
    """The paper's Figure 11 for this run, one figure per test image (``qualitative-<name>.png``):
    the ground truth, then every Table 2 row's input image beside the prediction of its
    first-seed model, in table order. Returns the written paths by file name."""
    import torch

    from msrs.layout import list_split
    from segmentation import figures
    from segmentation.data import input_image
    from segmentation.evaluate import predict
    from segmentation.train import load_trained

    pairs = list_split(data_root, "test", labels=True)
    times = time_of_day(data_root, [pair.name for pair in pairs])
    examples = pick_examples(pairs, count, times)
    first: dict[Row, dict] = {}
    for run in sorted(runs, key=lambda r: r["seed"]):
        first.setdefault(run["row"], run)
    order = list(table2(runs)["input"])
    images: dict[Row, np.ndarray] = {}
    for row in sorted(first, key=lambda row: order.index(row.label)):
        fused = fused_dirs.get(row)
        if row.method and fused is None:
            continue  # a row whose fused images this report does not have
        files = [fused / f"{pair.name}.png" if fused else None for pair in examples]
        images[row] = np.stack(
            [input_image(row.name, pair, file) for pair, file in zip(examples, files, strict=True)]
        )
    predictions = {}
    for row in images:
        if (first[row]["folder"] / "model.pt").is_file():
            model, image_scale = load_trained(first[row]["folder"] / "model.pt")
            predictions[row] = predict(model, images[row], torch.device("cpu"), image_scale=image_scale)
    written = {}
    for index, pair in enumerate(examples):
        panels = [("Ground truth", pair.read_label())]
        for row, stack in images.items():
            panels.append((row.label, stack[index][..., 0] if row.kind == INFRARED else stack[index]))
            if row in predictions:
                panels.append((f"{row.label} prediction", predictions[row][index]))
        file = f"qualitative-{pair.name}.png"
        written[file] = figures.qualitative(
            f"Test image {pair.name} ({times.get(pair.name, 'time of day unknown')}): "
            "each row's input and prediction",
            panels,
            Path(folder) / file,
        )
    return written
