"""The report as a stage: Table 2 and Table 1 from the current results of the plan, the report
page (``index.md``, ``index.html``), ``report/provenance.json`` and a provenance section
saying what each row was computed from.

Provenance of a row: the data identity (the manifest digest of what its segmentation read),
the SSPFusion model digest (SSPFusion rows), the fused images' digest (fused rows), the
segmentation identity of every seed, the seeds, device, precision, torch and smp versions,
and the wall time. When rows differ in device, precision, library versions or segmentation
settings, the report says so: their numbers are not strictly comparable.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import yaml

from configs.schema import ExperimentConfig, to_dict
from pipelines.engine.data_root import is_synthetic
from pipelines.engine.identity import Identity
from pipelines.engine.layout import RunLayout
from pipelines.engine.markers import read_done
from pipelines.engine.stage import Stage, UpstreamError
from runtime.files import write_json_atomic
from segmentation.rows import Row

# what the report compares between rows: where they ran (device, resolved precision, CPU
# threads), with what (library versions, the requested runtime switches, the encoder's starting
# weights) and the segmentation settings
COMPARED = ("device", "precision", "threads", "libraries", "runtime", "weights", "config")


def check_current(stages: list[Stage]) -> None:
    """Read every stage's done.json again, just before the report reads its files: the identity
    the plan computed and the output digest it recorded must still hold (another process may
    have rerun or replaced it since). :class:`UpstreamError` names the first that does not."""
    for stage in stages:
        done = read_done(stage.folder)
        if done is None:
            raise UpstreamError(f"{stage.key}: {stage.folder} is not finished (no done.json); rerun run_all")
        if stage.identity is not None and done.get("identity") != stage.identity.digest:
            raise UpstreamError(
                f"{stage.key}: {stage.folder}/done.json has another identity than this plan's "
                "(rerun by another process?); rerun run_all"
            )
        if done.get("output") != stage.output():
            raise UpstreamError(
                f"{stage.key}: the files of {stage.folder} changed after it finished "
                "(its done.json output digest no longer matches); rerun run_all"
            )


def _segmentation_runs(stages: list[Stage]) -> list[dict]:
    runs = []
    for stage in stages:
        if stage.kind == "segmentation":
            runs.append(
                {
                    "row": stage.row,
                    "seed": stage.seed,
                    "metrics": json.loads((stage.folder / "metrics.json").read_text()),
                    "folder": stage.folder,
                    "done": read_done(stage.folder) or {},
                    "upstream": stage.upstream,
                }
            )
    return runs


def provenance(runs: list[dict], by_key: dict[str, Stage]) -> list[dict]:
    """One record per Table 2 row (input), seeds in order."""
    rows: dict[str, dict] = {}
    for run in sorted(runs, key=lambda r: r["seed"]):
        done, metrics = run["done"], run["metrics"]
        env = done.get("environment", {})
        parts = done.get("parts", {})
        libraries = env.get("libraries") or {"torch": env.get("torch"), "smp": env.get("smp")}
        values = {
            "device": metrics.get("device", env.get("device")),
            "precision": metrics.get("precision", env.get("precision")),
            "threads": env.get("threads"),
            "libraries": ", ".join(f"{name} {version}" for name, version in sorted(libraries.items())),
            "runtime": parts.get("runtime"),
            "weights": parts.get("weights"),
            "config": parts.get("config"),
        }
        row = rows.setdefault(
            run["row"],
            {
                "input": run["row"].name,
                "label": run["row"].label,
                "data": done.get("parts", {}).get("data"),
                "fusion_model": None,
                "fused_images": None,
                "seeds": [],
                "segmentation_identity": [],
                **values,
                "wall_seconds": 0.0,
            },
        )
        for key in run["upstream"]:
            row["fused_images"] = (read_done(by_key[key].folder) or {}).get("output")
            for fusion_key in by_key[key].upstream:
                row["fusion_model"] = (read_done(by_key[fusion_key].folder) or {}).get("output")
        row["seeds"].append(run["seed"])
        row["segmentation_identity"].append(done.get("identity"))
        row["wall_seconds"] = round(row["wall_seconds"] + float(metrics.get("wall_seconds", 0)), 1)
        for field in COMPARED:  # seeds of one row trained differently: the row shows both
            if str(values[field]) not in str(row[field]).split(" / "):
                row[field] = f"{row[field]} / {values[field]}"
    return list(rows.values())


def provenance_notes(rows: list[dict]) -> list[str]:
    """The report's provenance section (Markdown lines), with a warning when rows differ."""
    lines = [
        "",
        "## Provenance",
        "",
        "| Row | Seed(s) | Data | Fusion model | Fused images | Device | Precision | Threads "
        "| Wall time (s) |",
        "|" + "---|" * 9,
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | {', '.join(map(str, row['seeds']))} | "
            f"{row['data']} | {row['fusion_model'] or '-'} | "
            f"{row['fused_images'] or '-'} | {row['device']} | {row['precision']} | "
            f"{row['threads']} | {row['wall_seconds']:.0f} |"
        )
    lines.append("")
    lines.append("Segmentation identities, library versions, threads and the full record: provenance.json.")
    return lines + differences_warning(rows)


def differences_warning(rows: list[dict]) -> list[str]:
    """A warning naming, for each :data:`COMPARED` field in which rows differ, which rows had
    which value (none when every row was made alike)."""
    details = []
    for field in COMPARED:
        groups: dict[str, list[str]] = {}
        for row in rows:
            groups.setdefault(str(row[field]), []).append(row["label"])
        if len(groups) > 1:
            shown = "; ".join(f"{value} ({', '.join(names)})" for value, names in groups.items())
            details.append(f"{field}: {shown}")
    if not details:
        return []
    return [
        "",
        "**Warning:** rows were made differently, so their numbers are not strictly comparable. "
        + " | ".join(details),
    ]


def _swap_into_place(built: Path, folder: Path) -> None:
    """Replace ``folder`` by the fully written ``built`` (a sibling): the report a reader opens
    is never half old, half new, and holds no file of an older run. The old report is derived
    data (rebuilt from the stages at any time) and is removed."""
    old = folder.with_name(f".{folder.name}.replaced-{os.getpid()}")
    if folder.exists():
        folder.rename(old)
    built.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def stage_seconds(stages: list[Stage]) -> list[dict]:
    """``{stage, kind, seconds}`` of every finished stage (its ``done.json``) of the plan."""
    seconds = []
    for stage in stages:
        done = read_done(stage.folder)
        if done:
            seconds.append({"stage": stage.key, "kind": stage.kind, "seconds": done.get("seconds")})
    return seconds


def variant_rows(config: ExperimentConfig, rows: list[Row]) -> dict[str, str]:
    """Table 2 label of each variant row among ``rows`` -> the label of its base method's row,
    where that row is among them too."""
    by_method = {row.method: row for row in rows if row.method}
    pairs = {}
    for row in rows:
        variant = config.variants.get(row.method)
        if variant is not None and variant.base in by_method:
            pairs[row.label] = by_method[variant.base].label
    return pairs


def report_stage(stages: list[Stage], layout: RunLayout, data_root: Path, config: ExperimentConfig) -> Stage:
    """The report of the plan ``stages`` of ``config``: reads every segmentation and quality
    stage, and writes the tables, figures and the report page (index.md, index.html, with the
    resolved config)."""
    config_yaml = yaml.safe_dump(to_dict(config), sort_keys=False)
    against = variant_rows(config, list(dict.fromkeys(s.row for s in stages if s.kind == "segmentation")))
    reads = tuple(s.key for s in stages if s.kind in ("segmentation", "quality"))
    by_key = {s.key: s for s in stages}
    folder = layout.report

    def run(resume, identity):
        check_current([by_key[key] for key in reads])
        runs = _segmentation_runs(stages)
        if not runs:
            return {"written": []}
        scratch = folder.with_name(f".{folder.name}.building-{os.getpid()}")
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            written = build(scratch, runs)
            _swap_into_place(scratch, folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return {"written": [str(folder / Path(path).relative_to(scratch)) for path in written.values()]}

    def build(folder: Path, runs: list[dict]) -> dict[str, Path]:
        import pandas as pd

        from msrs.layout import MSRS, detect_layout
        from segmentation.report import write_report
        from segmentation.report_page import collect_facts, describe_data, table2_notes, write_report_page

        quality = {
            s.row.label: pd.read_csv(s.folder / "per_image.csv", dtype={"name": str})
            for s in stages
            if s.kind == "quality"
        }
        fused = {
            s.row: s.folder / "test" for s in stages if s.kind == "fuse" and (s.folder / "test").is_dir()
        }
        rows = provenance(runs, by_key)
        write_json_atomic(folder / "provenance.json", rows)
        synthetic = is_synthetic(data_root)
        real_msrs = not synthetic and detect_layout(data_root) == MSRS
        data = describe_data(data_root, synthetic)
        written = write_report(
            folder,
            runs,
            quality,
            real_msrs=real_msrs,
            notes=provenance_notes(rows),
            data_root=data_root,
            fused_dirs=fused,
            data=data,
            paper_fusion_table=config.paper_fusion_table,
            against=against,
        )
        fusion = next((s.folder for s in stages if s.kind == "fusion"), None)
        facts = collect_facts(sys.argv, config_yaml, rows, stage_seconds(stages), data, real_msrs, fusion)
        facts.table2_notes = table2_notes(written["table2.md"])
        return written | write_report_page(folder, written, facts)

    return Stage(
        "report",
        "report",
        folder,
        lambda outputs: Identity({"upstream": [outputs[k] for k in reads]}),
        run,
        lambda: "",
        "Table 2, Table 1, figures, provenance",
        upstream=reads,
        cache=False,
    )


__all__ = ["report_stage", "provenance", "provenance_notes", "stage_seconds"]
