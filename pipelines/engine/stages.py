"""The four kinds of stage an experiment has, each built from what identifies it: train a
learned fusion method, fuse every split with a method, score the fused test images (Table 1),
train and test DeepLabV3+ on one Table 2 row and seed.

The same builders serve run_all's plan (:mod:`pipelines.engine.plan`) and the stage scripts
(``pipelines/train_fusion.py`` ...), so a stage run by hand and the same stage run by run_all
have the same identity and the same ``done.json``.
"""

from __future__ import annotations

from pathlib import Path

from configs.schema import ExperimentConfig, to_dict, variant_config
from msrs.layout import list_split, root_splits, training_splits
from pipelines.engine.code import PROJECT_PACKAGES, code_digest
from pipelines.engine.identity import Identity, Manifests, digest, file_digest, folder_manifest, result_fields
from pipelines.engine.layout import RunLayout
from pipelines.engine.machine import library_versions, requested_runtime
from pipelines.engine.stage import Stage
from runtime.files import write_text_atomic
from segmentation.rows import Row


def fusion_stage(
    config: ExperimentConfig,
    layout: RunLayout,
    data_root: Path,
    manifests: Manifests,
    env: dict,
    progress: bool = True,
    method: str = "sspfusion",
) -> Stage:
    """Train a learned fusion method (SSPFusion, a learned baseline or a plugin's network, or a
    variant of one, ``config.variants``) on the training pairs (identity: its config section
    (``fusion``; a baseline's own section plus ``fusion.max_pairs`` and the digest of any
    pretrained weights its loss uses; a variant's with its ``set`` applied), seed, code, train
    ir/vi manifest, runtime, libraries); output: the SHA-256 of model.pt."""
    from fusion.methods.learned import recipe
    from fusion.training import train

    base, config = variant_config(config, method)
    learned = recipe(base)
    section = getattr(config, learned.config_section)
    settings = {learned.config_section: to_dict(section), "max_pairs": config.fusion.max_pairs}
    weights = learned.pretrained_weights(section)
    if weights is not None:  # e.g. CMTFusion's perceptual network
        settings["pretrained_weights"] = weights
    code = method_code("fusion.training", base)
    folder = layout.fusion_model(method)
    splits = training_splits(data_root)

    def identify(outputs):
        return Identity(
            {
                "config": {**settings, "seed": config.seed},
                "code": code,
                "data": manifests.of_data(data_root, splits, ("ir", "vi")),
                "runtime": requested_runtime(config),
                "libraries": env["libraries"],
            }
        )

    def run(resume, identity):
        return train(base, config, data_root, folder, resume=resume, progress=progress, identity=identity)

    return Stage(
        f"fusion:{method}",
        "fusion",
        folder,
        identify,
        run,
        lambda: _file_output(folder / "model.pt"),
        f"train {method}"
        + (f" ({base}, {_settings(config.variants[method].set)})" if base != method else ""),
    )


def method_code(entry: str, method: str) -> str:
    """The code digest of a stage that runs ``entry`` with ``method``: the project's code and a
    plugin method's own package's (pipelines.engine.code)."""
    from fusion.methods import method_modules

    modules = method_modules(method)
    plugins = tuple(
        dict.fromkeys(m.split(".")[0] for m in modules if m.split(".")[0] not in PROJECT_PACKAGES)
    )
    return code_digest(entry, *modules, plugins=plugins)


def _settings(values: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items())


def method_options(config: ExperimentConfig, method: str) -> dict:
    """The builder options a method takes from the experiment config: what an external
    folder's grey images become (``external_grey``); a rule's config section (its fields)."""
    from fusion.methods import entry, external_folder

    if external_folder(method) is not None:
        return {"grey": config.external_grey}
    registered = entry(variant_config(config, method)[0])
    if registered.trainable or registered.config is None:
        return {}
    return to_dict(getattr(config, registered.section))


def fuse_stage(
    row: Row,
    layout: RunLayout,
    data_root: Path,
    manifests: Manifests,
    checkpoint: Path | None = None,
    progress: bool = True,
    options: dict | None = None,
    base: str | None = None,
) -> Stage:
    """Fuse every split of the data root with ``row``'s method (a variant: its registered ``base``,
    with the model of the variant's own training stage) built with ``options``
    (:func:`method_options`) (identity: the method, its options and parameters, code, ir/vi
    manifest, the external folder's fingerprint, the SSPFusion model's digest); output: the
    manifest of the fused folder. In a plan, sspfusion's model comes from the fusion stage;
    given ``checkpoint``, from that file. The same holds for every learned method."""
    from fusion.fuse import fuse_split
    from fusion.methods import build_method, external_folder, is_trainable

    method = row.method
    options = options or {}
    base = base or method
    folder = layout.fused(method)
    splits = root_splits(data_root)
    learned = is_trainable(base)
    model = checkpoint or layout.fusion_model(method) / "model.pt"
    upstream = (f"fusion:{method}",) if learned and checkpoint is None else ()

    def identify(outputs):
        parts = {
            "config": {"method": method, **options},
            "code": method_code("fusion.fuse", base),
            "data": manifests.of_data(data_root, splits, ("ir", "vi")),
            "libraries": library_versions(),
        }
        if external_folder(method) is not None:
            external = build_method(method, **options)
            parts["external"] = {
                "folder": str(external.folder.resolve()),
                "files": folder_manifest(external.folder),
            }
        elif learned:
            parts["upstream"] = [outputs[k] for k in upstream] or [_file_output(model)]
        else:
            parts["config"]["fingerprint"] = build_method(base, **options).fingerprint()
        return Identity(parts)

    def run(resume, identity):
        fuser = build_method(base, **options, **({"checkpoint": model} if learned else {}))
        if hasattr(fuser, "validate_all"):  # an external folder: every split's problems at once
            fuser.validate_all(data_root)
        return {
            split: fuse_split(
                fuser,
                list_split(data_root, split, labels=False),
                folder / split,
                progress=progress,
                split=split,
            )
            for split in splits
        }

    return Stage(
        f"fuse:{method}",
        "fuse",
        folder,
        identify,
        run,
        lambda: folder_manifest(folder),
        f"fuse {' + '.join(splits)} with {method}",
        upstream=upstream,
        row=row,
        resources="fuse" if learned else "fuse_rule",  # a rule or a folder needs no GPU
    )


def quality_stage(
    row: Row,
    layout: RunLayout,
    data_root: Path,
    convention: str,
    manifests: Manifests,
    split: str = "test",
    limit: int | None = None,
    folder: Path | None = None,
    upstream: tuple[str, ...] | None = None,
) -> Stage:
    """Fusion metrics of one split of ``row``'s fused images, one line per image (identity: convention,
    split, code, ir/vi manifest, the fused folder's digest); output: per_image.csv's digest."""
    from fusion.quality import evaluate_split

    method = row.method
    folder = folder or layout.quality(method)
    fused = layout.fused(method)
    upstream = (f"fuse:{method}",) if upstream is None else upstream

    def identify(outputs):
        return Identity(
            {
                "config": {"convention": convention, "split": split, "limit": limit},
                "code": code_digest("fusion.quality"),
                "data": manifests.of_data(data_root, [split], ("ir", "vi")),
                "libraries": library_versions(),
                "upstream": [outputs[k] for k in upstream] or [folder_manifest(fused)],
            }
        )

    def run(resume, identity):
        import time

        pairs = list_split(data_root, split, labels=False)[:limit]
        start = time.perf_counter()
        frame = evaluate_split(fused / split, pairs, convention)
        seconds = time.perf_counter() - start
        write_text_atomic(folder / "per_image.csv", frame.to_csv(index=False))
        return {"images": len(frame), "metrics_ms": seconds / max(len(frame), 1) * 1000}

    return Stage(
        f"quality:{method}",
        "quality",
        folder,
        identify,
        run,
        lambda: _file_output(folder / "per_image.csv"),
        f"fusion metrics of {method} on the {split} split",
        upstream=upstream,
        row=row,
    )


def segmentation_stage(
    config: ExperimentConfig,
    layout: RunLayout,
    data_root: Path,
    row: Row,
    seed: int,
    manifests: Manifests,
    env: dict,
    fused: Path | None = None,
    upstream: tuple[str, ...] = (),
    folder: Path | None = None,
    progress: bool = True,
) -> Stage:
    """DeepLabV3+ on one Table 2 row and seed (identity: the segmentation section less what does not
    change results, seed, code, label manifest (+ the infrared or visible manifest), the fused
    images' digest, precision); output: metrics.json's digest. ``fused``: the folder of fused
    images (train/ and test/) of a fused row; ``upstream``: the fuse stage writing it
    (none: the folder's own manifest identifies it)."""
    from segmentation.pretrained import weights_digest
    from segmentation.train import train_segmentation

    folder = folder or layout.segmentation(row, seed)
    modality = {"infrared": ("ir",), "visible": ("vi",)}.get(row.kind, ())
    splits = root_splits(data_root)
    image_dirs = {split: fused / split for split in splits} if fused is not None else None

    def identify(outputs):
        parts = {
            "config": {"segmentation": result_fields(config.segmentation), "seed": seed},
            "code": code_digest("segmentation.train"),
            "data": manifests.of_data(data_root, splits, ("label", *modality)),
            "runtime": requested_runtime(config),
            "libraries": env["libraries"],
            "weights": weights_digest(config.segmentation.encoder_weights, config.segmentation.encoder),
        }
        if fused is not None:
            parts["upstream"] = [outputs[k] for k in upstream] or [folder_manifest(fused)]
        return Identity(parts)

    def run(resume, identity):
        return train_segmentation(
            config,
            data_root,
            row.name,
            folder,
            seed,
            image_dirs=image_dirs,
            resume=resume,
            progress=progress,
            identity=identity,
        )

    return Stage(
        f"segmentation:{row.name}:seed{seed}",
        "segmentation",
        folder,
        identify,
        run,
        lambda: _files_output(folder, SEGMENTATION_OUTPUTS),
        f"DeepLabV3+ on {row.name}, seed {seed}",
        upstream=upstream,
        row=row,
        seed=seed,
    )


def _file_output(path: Path) -> str:
    return file_digest(path) if path.is_file() else ""


# what the report reads of a segmentation stage: the scores, the per-image evidence behind the
# intervals, and the model the qualitative figures predict with
SEGMENTATION_OUTPUTS = ("metrics.json", "confusion_per_image.npz", "model.pt")


def _files_output(folder: Path, names) -> str:
    """One digest over the named files of a stage folder (a missing file counts as empty)."""
    return digest({name: _file_output(folder / name) for name in names})


__all__ = [
    "SEGMENTATION_OUTPUTS",
    "fuse_stage",
    "fusion_stage",
    "method_code",
    "method_options",
    "quality_stage",
    "segmentation_stage",
]
