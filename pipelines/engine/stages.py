"""The stages of an experiment and what identifies each: data -> train fusion -> fuse ->
quality -> segmentation -> report.

:func:`build_plan` validates everything that can be validated before anything trains (data
root, method names, external folders, colliding rows or folders) and lists the stages in run
order. The single-stage builders (:func:`fusion_stage`, :func:`fuse_stage`,
:func:`quality_stage`, :func:`segmentation_stage`) are what the stage scripts
(``pipelines/train_fusion.py`` ...) run as well, so a stage run by hand and the same stage run
by run_all have the same identity and the same ``done.json``.
"""

from __future__ import annotations

import atexit
import platform
import shutil
import sys
import tempfile
from functools import cache
from importlib import metadata
from pathlib import Path

from configs.schema import (
    ConfigError,
    ExperimentConfig,
    check_frozen_encoder_is_trained,
    to_dict,
    variant_config,
)
from msrs.layout import (
    DataError,
    is_labelled,
    list_split,
    root_splits,
    training_splits,
    validate_root,
)
from pipelines.engine.code import PROJECT_PACKAGES, code_digest
from pipelines.engine.identity import (
    DIGESTS,
    Identity,
    Manifests,
    digest,
    file_digest,
    folder_manifest,
    result_fields,
)
from pipelines.engine.layout import EXTERNAL, RunLayout, method_slug
from pipelines.engine.locks import locked
from pipelines.engine.markers import mark_started, move_aside, read_done, write_done
from pipelines.engine.plan import Stage
from runtime.device import cpu_share, pick_device
from runtime.files import write_text_atomic

# the libraries whose version can change a stage's numbers (their kernels, defaults, resampling)
LIBRARIES = (
    "torch",
    "torchvision",
    "segmentation-models-pytorch",
    "timm",
    "albumentations",
    "opencv-python-headless",
    "numpy",
    "scipy",
    "kornia",
    "PyWavelets",
    "pillow",
)


@cache
def library_versions() -> dict[str, str]:
    """Installed version of each of :data:`LIBRARIES` (``absent`` for one that is not)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def requested_runtime(config: ExperimentConfig) -> dict:
    """The runtime switches that change numbers, as requested (``auto`` stays ``auto``): the
    ``runtime`` part of a training stage's identity. What they resolved to on the machine
    (device, precision, threads) is recorded in done.json and compared by the report, so that
    a plan on another machine (a CPU login node reading GPU results) keeps them cached."""
    runtime = config.runtime
    return {
        "amp": runtime.amp,
        "channels_last": runtime.channels_last,
        "cudnn_benchmark": runtime.cudnn_benchmark,
        "deterministic": runtime.deterministic,
    }


def environment(config: ExperimentConfig) -> dict:
    """What a stage runs with on this machine (recorded in done.json, compared by the report):
    device, resolved precision, CPU threads, library versions."""
    device = pick_device(config.runtime.device)
    return {
        "device": str(device),
        "precision": precision_name(config, device),
        "threads": cpu_share(config.runtime),
        "libraries": library_versions(),
        "torch": metadata.version("torch"),
        "smp": metadata.version("segmentation-models-pytorch"),
        "python": platform.python_version(),
        "platform": sys.platform,
    }


def precision_name(config: ExperimentConfig, device) -> str:
    """``fp32`` without autocast, else the autocast dtype (``bfloat16``, ``float16``)."""
    from runtime.precision import resolve_precision

    return resolve_precision(config.runtime, device).name


# ----------------------------------------------------------------------------- data root


def is_synthetic(root: Path) -> bool:
    """Whether the data root holds the built-in synthetic scenes, by what its files are
    (:func:`msrs.synthetic.is_synthetic`)."""
    from msrs.synthetic import is_synthetic as made_by_generator

    return made_by_generator(root)


def resolve_data_root(
    config: ExperimentConfig, data_root: str | Path | None, layout: RunLayout, dry_run: bool = False
) -> Path:
    """The data root a stage reads: ``data_root`` (command line) if given, else ``data.root``
    (config), else the synthetic scenes generated under ``<out>/data`` (regenerated, the old
    set moved aside, when their settings or the generator's code changed; under the folder's
    lock, so that concurrent jobs generate it once). Binds the process's file-digest memo to
    the run folder (``layout.file_digests``). With ``dry_run`` nothing is written: scenes that
    would be generated are generated into a temporary folder (removed at exit), so the plan
    shows the identities the run would have."""
    DIGESTS.attach(layout.file_digests, save=not dry_run)
    if data_root is not None:
        return Path(data_root)
    if config.data.root is not None:
        return Path(config.data.root)
    if not config.data.synthetic_allowed:
        raise ConfigError(
            f"config '{config.name}' is for real data and has no data root: pass --data-root DIR "
            "(or set data.root); --set data.synthetic_allowed=true runs it on the synthetic scenes"
        )
    folder, synthetic = layout.data, config.data.synthetic
    identity = Identity({"config": to_dict(synthetic), "code": code_digest("msrs.synthetic")})
    done = read_done(folder)
    if done and done.get("identity") == identity.digest:
        return folder
    if dry_run:
        scratch = Path(tempfile.mkdtemp(prefix="fusionseg-dry-run-"))
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        return _write_synthetic(scratch / "data", config, identity)
    with locked(folder, "generating the synthetic scenes", wait=True):
        done = read_done(folder)  # another process may have made them meanwhile
        if done and done.get("identity") == identity.digest:
            return folder
        if folder.exists():
            move_aside(folder, "stale")
        mark_started(folder, "data")
        return _write_synthetic(folder, config, identity)


def _write_synthetic(folder: Path, config: ExperimentConfig, identity: Identity) -> Path:
    from msrs.synthetic import write_synthetic

    synthetic = config.data.synthetic
    write_synthetic(
        folder,
        train=synthetic.train,
        test=synthetic.test,
        height=synthetic.height,
        width=synthetic.width,
        seed=synthetic.seed,
        night_fraction=synthetic.night_fraction,
    )
    write_done(
        folder,
        {
            "kind": "synthetic",
            "identity": identity.digest,
            "parts": identity.part_digests,
            "settings": to_dict(synthetic),
        },
    )
    return folder


# ----------------------------------------------------------------------------- stages


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
    from fusion.methods import entry

    if method.startswith(EXTERNAL):
        return {"grey": config.external_grey}
    registered = entry(variant_config(config, method)[0])
    if registered.trainable or registered.config is None:
        return {}
    return to_dict(getattr(config, registered.section))


def fuse_stage(
    method: str,
    layout: RunLayout,
    data_root: Path,
    manifests: Manifests,
    checkpoint: Path | None = None,
    progress: bool = True,
    options: dict | None = None,
    base: str | None = None,
) -> Stage:
    """Fuse every split of the data root with ``method`` (a variant: its registered ``base``,
    with the model of the variant's own training stage) built with ``options``
    (:func:`method_options`) (identity: the method, its options and parameters, code, ir/vi
    manifest, the external folder's fingerprint, the SSPFusion model's digest); output: the
    manifest of the fused folder. In a plan, sspfusion's model comes from the fusion stage;
    given ``checkpoint``, from that file. The same holds for every learned method."""
    from fusion.fuse import fuse_split
    from fusion.methods import build_method, is_trainable

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
        if method.startswith(EXTERNAL):
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
        resources="fuse" if learned else "fuse_rule",  # a rule or a folder needs no GPU
    )


def quality_stage(
    method: str,
    layout: RunLayout,
    data_root: Path,
    convention: str,
    manifests: Manifests,
    split: str = "test",
    limit: int | None = None,
    folder: Path | None = None,
    upstream: tuple[str, ...] | None = None,
) -> Stage:
    """Fusion metrics of one split's fused images, one row per image (identity: convention,
    split, code, ir/vi manifest, the fused folder's digest); output: per_image.csv's digest."""
    from fusion.quality import evaluate_split

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
    )


def segmentation_stage(
    config: ExperimentConfig,
    layout: RunLayout,
    data_root: Path,
    input_name: str,
    seed: int,
    manifests: Manifests,
    env: dict,
    fused: Path | None = None,
    upstream: tuple[str, ...] = (),
    folder: Path | None = None,
    progress: bool = True,
) -> Stage:
    """DeepLabV3+ on one input and seed (identity: the segmentation section less what does not
    change results, seed, code, label manifest (+ the infrared or visible manifest), the fused
    images' digest, precision); output: metrics.json's digest. ``fused``: the folder of fused
    images (train/ and test/) of a ``fused:`` input; ``upstream``: the fuse stage writing it
    (none: the folder's own manifest identifies it)."""
    from segmentation.pretrained import weights_digest
    from segmentation.train import train_segmentation

    folder = folder or layout.segmentation(input_name, seed)
    modality = {"infrared": ("ir",), "visible": ("vi",)}.get(input_name, ())
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
            input_name,
            folder,
            seed,
            image_dirs=image_dirs,
            resume=resume,
            progress=progress,
            identity=identity,
        )

    return Stage(
        f"segmentation:{input_name}:seed{seed}",
        "segmentation",
        folder,
        identify,
        run,
        lambda: _files_output(folder, SEGMENTATION_OUTPUTS),
        f"DeepLabV3+ on {input_name}, seed {seed}",
        upstream=upstream,
        input_name=input_name,
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


# ----------------------------------------------------------------------------- the plan


def input_names(config: ExperimentConfig, methods: list[str]) -> list[str]:
    return [*config.inputs, *(f"fused:{method}" for method in methods)]


def row_labels(config: ExperimentConfig) -> dict[str, str]:
    """Table rows named by the config rather than by :func:`segmentation.report.display_name`:
    input name -> label of each variant that has one."""
    return {f"fused:{name}": variant.label for name, variant in config.variants.items() if variant.label}


def row_name(config: ExperimentConfig, input_name: str) -> str:
    """The Table 1 / Table 2 row name of an input: its variant's label, else its display name."""
    from segmentation.report import row_label

    return row_label({"input": input_name, "label": row_labels(config).get(input_name, "")})


def check_collisions(config: ExperimentConfig, methods: list[str]) -> None:
    """Two rows with one display name, or two methods writing one folder, are a plan error."""
    folders: dict[str, str] = {}
    rows: dict[str, str] = {}
    for name in input_names(config, methods):
        method = name.removeprefix("fused:")
        if name.startswith("fused:"):
            slug = method_slug(method)
            if slug in folders:
                raise ConfigError(
                    f"methods: '{folders[slug]}' and '{method}' would both write "
                    f"fused/{slug}; rename one of the folders or drop one"
                )
            folders[slug] = method
        row = row_name(config, name)
        if row in rows:
            raise ConfigError(
                f"inputs/methods: '{rows[row]}' and '{name}' would both be the Table 2 row '{row}'"
            )
        rows[row] = name


def build_plan(
    config: ExperimentConfig,
    layout: RunLayout,
    data_root: Path,
    methods: list[str],
    env: dict,
    progress: bool = True,
) -> list[Stage]:
    """Validate everything that can be validated without training, then list the stages."""
    from fusion.methods import available_methods, build_method, is_trainable
    from pipelines.engine.report import report_stage

    rows = input_names(config, methods)
    if rows and not is_labelled(data_root):
        raise DataError(
            f"{data_root}: a fusion-only pair folder (ir/ vi/, no labels) cannot be segmented; "
            "give an MSRS or MFNet root, or fuse and measure it with pipelines/evaluate_fusion.py"
        )
    validate_root(data_root, check_labels=bool(rows))  # label values too, before anything trains
    for name in config.variants:
        if name in available_methods():
            raise ConfigError(
                f"variants.{name}: '{name}' is a registered method; give the variant a name of its own"
            )
    known = [*available_methods(), *config.variants]
    for method in methods:
        if not method.startswith(EXTERNAL) and method not in known:
            raise ConfigError(
                f"unknown fusion method '{method}' (valid: {', '.join(known)}, external:<folder>)"
            )
        if method.startswith(EXTERNAL):
            build_method(method).validate_all(data_root)
    bases = {method: variant_config(config, method)[0] for method in methods}
    check_collisions(config, methods)
    if rows:  # what the first segmentation stage would refuse, refused before anything runs
        from segmentation.model import check_encoder
        from segmentation.pretrained import require_weights

        check_encoder(config.segmentation.encoder)
        check_frozen_encoder_is_trained(config.segmentation)
        require_weights(config.segmentation.encoder, config.segmentation.encoder_weights)
    manifests = Manifests()
    stages: list[Stage] = []
    for method in methods:
        if is_trainable(bases[method]):
            stages.append(fusion_stage(config, layout, data_root, manifests, env, progress, method))
    for method in methods:
        stages.append(
            fuse_stage(
                method,
                layout,
                data_root,
                manifests,
                progress=progress,
                options=method_options(config, method),
                base=bases[method],
            )
        )
        stages.append(quality_stage(method, layout, data_root, config.metrics_convention, manifests))
    for name in input_names(config, methods):
        method = name.removeprefix("fused:") if name.startswith("fused:") else None
        for k in range(config.seeds):
            stages.append(
                segmentation_stage(
                    config,
                    layout,
                    data_root,
                    name,
                    config.seed + k,
                    manifests,
                    env,
                    fused=layout.fused(method) if method else None,
                    upstream=(f"fuse:{method}",) if method else (),
                    progress=progress,
                )
            )
    stages.append(report_stage(stages, layout, data_root, config))
    return stages


__all__ = [
    "build_plan",
    "fusion_stage",
    "fuse_stage",
    "method_options",
    "quality_stage",
    "segmentation_stage",
    "resolve_data_root",
    "is_synthetic",
    "environment",
    "input_names",
    "check_collisions",
    "row_labels",
    "row_name",
]
