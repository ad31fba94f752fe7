"""An experiment as a plan of stages: data -> train fusion -> fuse -> quality -> segmentation -> report.

``build_plan`` turns a config into an ordered list of :class:`Stage` objects and validates the
whole plan before anything trains (data root, method names, external folders). ``run_plan``
executes it with the project's caching rules (../shared/DESIGN.md):

* a stage whose folder holds ``done.json`` with the same hash is **cached** and skipped;
* a stage finished under another hash is **stale**: its folder is moved aside to
  ``<folder>.superseded-<old hash>`` (never deleted) and the stage reruns;
* a stage folder with a checkpoint but no ``done.json`` (a crashed or killed run) **resumes**;
* ``force`` reruns matching stages on purpose, replacing their outputs in place.

Each stage hash covers exactly the settings that change its output, plus the hashes of the
stages it reads, so a changed setting reruns exactly the stages it affects.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from configs.runtime import is_done, read_done, write_json_atomic
from configs.schema import ConfigError, ExperimentConfig, config_hash, to_dict
from msrs.layout import SPLITS, DataError, list_split, validate_root

STAGE_KINDS = ("fusion", "fuse", "quality", "segmentation", "report")


@dataclass
class Stage:
    """One unit of work with its own output folder and done marker."""

    key: str  # unique, e.g. "segmentation:fused:gtf:seed0"
    kind: str  # one of STAGE_KINDS
    folder: Path
    hash: str
    run: Callable[[bool], object] = field(repr=False)  # called with resume=True/False
    describe: str = ""
    cache: bool = True  # the report is cheap and always rebuilt
    status: str = ""  # filled by plan_status: cached | stale | resume | new | forced
    input_name: str | None = None  # segmentation stages: the table row ...
    seed: int | None = None  # ... and the seed

    def matches(self, selector: str) -> bool:
        """``fusion``, ``fuse``, ``segmentation`` ..., a stage key, or ``input=NAME`` for the
        segmentation runs of one table row."""
        if selector.startswith("input="):
            return self.input_name == selector.removeprefix("input=")
        return selector in (self.kind, self.key)


def input_names(config: ExperimentConfig, methods: list[str]) -> list[str]:
    return [*config.inputs, *(f"fused:{method}" for method in methods)]


def method_slug(method: str) -> str:
    """Folder name of a method: ``external:/data/DDFM`` -> ``external-DDFM``."""
    if method.startswith("external:"):
        return "external-" + Path(method.removeprefix("external:").rstrip("/")).name
    return method


def _data_identity(config: ExperimentConfig, root: Path) -> str:
    done = read_done(root)
    if done and done.get("kind") == "synthetic":
        return f"synthetic:{done['config_hash']}"
    return f"root:{root.resolve()}"


def fusion_stage_hash(config: ExperimentConfig, data_root: Path, method: str = "sspfusion") -> str:
    """What identifies a trained fusion method: data, seed and its config section (``fusion``
    for SSPFusion, the section of its name for a learned baseline, which also reads
    ``fusion.max_pairs``); shared by run_all and pipelines/train_fusion.py, so either can reuse
    the other's model."""
    if method == "sspfusion":
        return config_hash(_data_identity(config, data_root), config.seed, to_dict(config.fusion))
    return config_hash(_data_identity(config, data_root), config.seed, method,
                       to_dict(getattr(config, method)), config.fusion.max_pairs)


def is_synthetic(root: Path) -> bool:
    done = read_done(root)
    return bool(done) and done.get("kind") == "synthetic"


def build_plan(config: ExperimentConfig, out: Path, data_root: Path, methods: list[str],
               progress: bool = True) -> list[Stage]:
    """Validate everything that can be validated without training, then list the stages."""
    from fusion.methods import TRAINABLE, available_methods  # noqa: PLC0415 - heavy imports lazy

    counts = validate_root(data_root)
    for split in SPLITS:
        if counts[split] == 0:
            raise DataError(f"{data_root / split}: empty split")
    known = available_methods()
    for method in methods:
        if not method.startswith("external:") and method not in known:
            raise ConfigError(f"unknown fusion method '{method}' (valid: {', '.join(known)}, "
                              "external:<folder>)")
        if method.startswith("external:"):
            _build_external(method).validate_all(data_root)
    data_id = _data_identity(config, data_root)
    runtime_free = lambda section: to_dict(section)  # noqa: E731 - device does not change results
    stages: list[Stage] = []

    fusion_hashes = {}  # trainable method -> identity of its fusion:<method> stage
    for method in methods:
        if method in TRAINABLE:
            fusion_hashes[method] = fusion_stage_hash(config, data_root, method)
            folder = out / "fusion" / method
            stages.append(Stage(f"fusion:{method}", "fusion", folder, fusion_hashes[method],
                                _train_fusion(config, data_root, folder, progress, method),
                                f"train {method}"))

    fuse_hashes = {}
    for method in methods:
        slug = method_slug(method)
        fuse_hashes[method] = config_hash(data_id, method, fusion_hashes.get(method, ""))
        folder = out / "fused" / slug
        trained = ((out / "fusion" / method, fusion_hashes[method]) if method in fusion_hashes
                   else None)
        stages.append(Stage(f"fuse:{method}", "fuse", folder, fuse_hashes[method],
                            _fuse(method, data_root, folder, trained, progress),
                            f"fuse train + test with {method}"))
        quality = out / "quality" / slug
        stages.append(Stage(f"quality:{method}", "quality", quality,
                            config_hash(fuse_hashes[method], config.metrics_convention),
                            _quality(method, data_root, folder, quality,
                                     config.metrics_convention, progress),
                            f"fusion metrics of {method} on the test split"))

    for name in input_names(config, methods):
        method = name.removeprefix("fused:") if name.startswith("fused:") else None
        upstream = fuse_hashes[method] if method else ""
        slug = f"fused-{method_slug(method)}" if method else name
        image_dirs = ({split: out / "fused" / method_slug(method) / split for split in SPLITS}
                      if method else None)
        for k in range(config.seeds):
            seed = config.seed + k
            folder = out / "segmentation" / slug / f"seed{seed}"
            digest = config_hash(data_id, name, upstream, seed, runtime_free(config.segmentation))
            stages.append(Stage(f"segmentation:{name}:seed{seed}", "segmentation", folder, digest,
                                _train_segmentation(config, data_root, name, folder, seed,
                                                    image_dirs, progress),
                                f"DeepLabV3+ on {name}, seed {seed}", input_name=name,
                                seed=seed))
    return stages


def _build_external(method: str):
    from fusion.methods import build_method  # noqa: PLC0415

    return build_method(method)


def _train_fusion(config, data_root, folder, progress, method):
    def run(resume: bool):
        if method == "sspfusion":
            from fusion.sspfusion.train import train_fusion  # noqa: PLC0415

            return train_fusion(config, data_root, folder, resume=resume, progress=progress)
        from fusion.methods.training import train_learned  # noqa: PLC0415

        return train_learned(method, config, data_root, folder, resume=resume, progress=progress)
    return run


def _fuse(method, data_root, folder, trained, progress):
    """``trained``: (folder, identity) of the method's training stage, None for untrained
    methods; a model not finished under that identity is an error naming the stage."""
    def run(resume: bool):
        from fusion.fuse import fuse_split  # noqa: PLC0415
        from fusion.methods import build_method  # noqa: PLC0415

        options = {}
        if trained is not None:
            model_folder, identity = trained
            if not is_done(model_folder, identity):
                raise DataError(f"{model_folder}: {method} is not trained with this config; run "
                                f"its training stage first (run_all --only fusion:{method} "
                                f"fuse:{method}, or without --only)")
            options["checkpoint"] = model_folder / "model.pt"
        fuser = build_method(method, **options)
        return {split: fuse_split(fuser, list_split(data_root, split, labels=False),
                                  folder / split, progress=progress) for split in SPLITS}
    return run


def _quality(method, data_root, fused, folder, convention, progress):
    def run(resume: bool):
        from fusion.quality import evaluate_split  # noqa: PLC0415

        frame = evaluate_split(fused / "test", list_split(data_root, "test", labels=False),
                               convention)
        folder.mkdir(parents=True, exist_ok=True)
        from configs.runtime import write_text_atomic  # noqa: PLC0415

        write_text_atomic(folder / "per_image.csv", frame.to_csv(index=False))
        return {"images": len(frame)}
    return run


def _train_segmentation(config, data_root, name, folder, seed, image_dirs, progress):
    def run(resume: bool):
        from segmentation.train import train_segmentation  # noqa: PLC0415

        return train_segmentation(config, data_root, name, folder, seed, image_dirs=image_dirs,
                                  resume=resume, progress=progress)
    return run


def plan_status(stages: list[Stage], force: list[str]) -> None:
    """Fill ``stage.status`` from what is on disk."""
    for stage in stages:
        done = read_done(stage.folder)
        forced = any(stage.matches(selector) for selector in force)
        if forced:
            stage.status = "forced"
        elif not stage.cache:
            stage.status = "new"
        elif done and done.get("config_hash") == stage.hash:
            stage.status = "cached"
        elif done:
            stage.status = "stale"
        elif (stage.folder / "checkpoint.pt").exists():
            stage.status = "resume"
        else:
            stage.status = "new"


def _prepare(stage: Stage) -> bool:
    """Make the folder ready for a run; returns the resume flag."""
    if stage.status == "stale":
        old = read_done(stage.folder) or {}
        target = stage.folder.with_name(f"{stage.folder.name}.superseded-{old.get('config_hash')}")
        if target.exists():
            shutil.rmtree(target)
        stage.folder.rename(target)
        stage.describe += f" (previous result kept in {target.name})"
        return False
    if stage.status == "forced" and stage.folder.exists():
        shutil.rmtree(stage.folder)
        return False
    return stage.status == "resume"


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def run_plan(stages: list[Stage], only: list[str], log: Callable[[str], None] = print) -> dict:
    """Run the stages in order; returns {key: status}. ``only`` limits to matching stages."""
    selected = [s for s in stages if not only or any(s.matches(sel) for sel in only)]
    todo = [s for s in selected if s.status != "cached"]
    start = time.perf_counter()
    took: dict[str, list[float]] = {}
    for number, stage in enumerate(selected, 1):
        prefix = f"[{number}/{len(selected)}] {stage.key}"
        if stage.status == "cached":
            log(f"{prefix}: cached ({stage.folder})")
            continue
        reason = {"stale": "config changed", "resume": "resuming from its checkpoint",
                  "forced": "--force", "new": "not run yet"}[stage.status]
        resume = _prepare(stage)
        elapsed = time.perf_counter() - start
        left = [s for s in todo if s is not stage and todo.index(s) > todo.index(stage)]
        log(f"{prefix}: {stage.status} ({reason}) - {stage.describe}; elapsed "
            f"{_duration(elapsed)}{_time_left(took, left)}")
        began = time.perf_counter()
        result = stage.run(resume)
        seconds = time.perf_counter() - began
        took.setdefault(stage.kind, []).append(seconds)
        if stage.cache:
            stage.folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(stage.folder / "done.json", {
                "config_hash": stage.hash, "stage": stage.key, "seconds": round(seconds, 1),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "result": result if isinstance(result, dict) else None})
        stage.status = "done"
    log(f"all {len(selected)} stages finished in {_duration(time.perf_counter() - start)} "
        f"({len(selected) - len(todo)} cached)")
    return {stage.key: stage.status for stage in selected}


def run_parallel(stages: list[Stage], only: list[str], jobs: int, command: list[str],
                 log_dir: Path, log: Callable[[str], None] = print) -> None:
    """Run the plan with independent segmentation runs side by side.

    Everything before segmentation (fusion training, fusing, quality) runs here, in order; then
    each pending segmentation stage runs as ``command + ["--only", key]`` in its own process,
    ``jobs`` at a time (on CUDA, child i sees GPU ``i mod n`` only; on the CPU the cores are
    shared out through ``runtime.threads``). A child's output goes to ``log_dir/<key>.log``.
    """
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    import torch  # noqa: PLC0415

    selected = [s for s in stages if not only or any(s.matches(sel) for sel in only)]
    run_plan([s for s in selected if s.kind != "segmentation"], [], log)
    pending = [s for s in selected if s.kind == "segmentation" and s.status != "cached"]
    gpus = torch.cuda.device_count()
    threads = max(1, (os.cpu_count() or 1) // jobs)
    log_dir.mkdir(parents=True, exist_ok=True)
    running: list[tuple[Stage, subprocess.Popen, object]] = []
    failed = []
    for index, stage in enumerate(pending):
        while len(running) >= jobs:
            running, finished = _reap(running)
            failed += finished
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
        handle = open(log_dir / f"{stage.key.replace(':', '_')}.log", "w")  # noqa: SIM115
        child = subprocess.Popen([*command, "--only", stage.key, "--set",
                                  f"runtime.threads={threads}"], stdout=handle,
                                 stderr=subprocess.STDOUT, env=env)
        log(f"[{index + 1}/{len(pending)}] {stage.key}: started in process {child.pid} "
            f"({stage.status})")
        running.append((stage, child, handle))
    while running:
        running, finished = _reap(running)
        failed += finished
    if failed:
        raise RuntimeError("segmentation runs failed: " + ", ".join(failed) +
                           f" (logs in {log_dir}); rerun to resume them")


def _reap(running):
    import time as clock  # noqa: PLC0415

    still, failed = [], []
    for stage, child, handle in running:
        code = child.poll()
        if code is None:
            still.append((stage, child, handle))
            continue
        handle.close()
        if code:
            failed.append(stage.key)
    if len(still) == len(running):
        clock.sleep(0.5)
    return still, failed


def _time_left(took: dict[str, list[float]], left: list[Stage]) -> str:
    """What remains after the current stage, from the mean time of each kind run so far.

    A kind not run yet is not guessed from the others (a segmentation run takes many times a
    fusion-metrics pass): it is named instead, until its first stage has been timed.
    """
    if not left:
        return ""
    known = sum(sum(took[s.kind]) / len(took[s.kind]) for s in left if s.kind in took)
    untimed = Counter(s.kind for s in left if s.kind not in took)
    if not untimed:
        return f", about {_duration(known)} left after it"
    names = " and ".join(f"{count} {kind}" for kind, count in untimed.items())
    timed = f"about {_duration(known)} plus " if known else ""
    return f", {timed}{names} stage(s) not timed yet left after it"


def finished_segmentation_runs(stages: list[Stage]) -> list[dict]:
    """The metrics of every finished segmentation stage of the plan, for the report."""
    import json  # noqa: PLC0415

    runs = []
    for stage in stages:
        if stage.kind != "segmentation":
            continue
        metrics = stage.folder / "metrics.json"
        if metrics.is_file() and _is_current(stage):
            runs.append({"input": stage.input_name, "seed": stage.seed,
                         "metrics": json.loads(metrics.read_text()), "folder": stage.folder})
    return runs


def finished_quality_tables(stages: list[Stage]) -> dict:
    """Per-image fusion metrics of every finished quality stage: method -> DataFrame."""
    import pandas as pd  # noqa: PLC0415

    tables = {}
    for stage in stages:
        per_image = stage.folder / "per_image.csv"
        if stage.kind == "quality" and per_image.is_file() and _is_current(stage):
            tables[stage.key.removeprefix("quality:")] = pd.read_csv(per_image)
    return tables


def _is_current(stage: Stage) -> bool:
    done = read_done(stage.folder)
    return bool(done) and done.get("config_hash") == stage.hash


__all__ = ["Stage", "STAGE_KINDS", "build_plan", "plan_status", "run_plan", "run_parallel",
           "input_names", "method_slug", "is_synthetic", "finished_segmentation_runs",
           "finished_quality_tables", "ConfigError"]
