"""The plan of an experiment: its Table 2 rows and the stages that make them, in run order
(train fusion -> fuse -> quality -> segmentation -> report).

:func:`build_plan` validates everything that can be validated before anything trains (data
root and its labels, method names, external folders, colliding rows or folders, the encoder and
its weights) and makes each row (:class:`segmentation.rows.Row`) once; every stage and the
report carry those rows.
"""

from __future__ import annotations

from pathlib import Path

from configs.schema import ConfigError, ExperimentConfig, check_frozen_encoder_is_trained, variant_config
from msrs.layout import DataError, is_labelled, validate_root
from pipelines.engine.identity import Manifests
from pipelines.engine.layout import RunLayout
from pipelines.engine.report import report_stage
from pipelines.engine.stage import Stage
from pipelines.engine.stages import (
    fuse_stage,
    fusion_stage,
    method_options,
    quality_stage,
    segmentation_stage,
)
from segmentation.rows import Row


def method_row(config: ExperimentConfig, method: str) -> Row:
    """The row of a method's fused images, labelled as the config's variant says where it does."""
    variant = config.variants.get(method)
    return Row.fused(method, variant.label if variant is not None else "")


def table_rows(config: ExperimentConfig, methods: list[str]) -> list[Row]:
    """Table 2's rows: the config's ``inputs`` (infrared, visible), then one per method."""
    return [*(Row.parse(name) for name in config.inputs), *(method_row(config, m) for m in methods)]


def check_collisions(rows: list[Row]) -> None:
    """Two rows with one label, or two methods writing one folder, are a plan error."""
    from fusion.methods import method_folder

    folders: dict[str, Row] = {}
    labels: dict[str, Row] = {}
    for row in rows:
        if row.method:
            folder = method_folder(row.method)
            other = folders.setdefault(folder, row)
            if other is not row:
                raise ConfigError(
                    f"methods: '{other.method}' and '{row.method}' would both write "
                    f"fused/{folder}; rename one of the folders or drop one"
                )
        other = labels.setdefault(row.label, row)
        if other is not row:
            raise ConfigError(
                f"inputs/methods: '{other.name}' and '{row.name}' would both be the Table 2 row '{row.label}'"
            )


def check_methods(config: ExperimentConfig, methods: list[str], data_root: Path) -> None:
    """Every method is registered, a variant or an external folder whose files fit the data root."""
    from fusion.methods import available_methods, build_method, external_folder

    for name in config.variants:
        if name in available_methods():
            raise ConfigError(
                f"variants.{name}: '{name}' is a registered method; give the variant a name of its own"
            )
    known = [*available_methods(), *config.variants]
    for method in methods:
        if external_folder(method) is not None:
            build_method(method).validate_all(data_root)
        elif method not in known:
            raise ConfigError(
                f"unknown fusion method '{method}' (valid: {', '.join(known)}, external:<folder>)"
            )


def check_segmentation(config: ExperimentConfig) -> None:
    """What the first segmentation stage would refuse, refused before anything runs."""
    from segmentation.model import check_encoder
    from segmentation.pretrained import require_weights

    check_encoder(config.segmentation.encoder)
    check_frozen_encoder_is_trained(config.segmentation)
    require_weights(config.segmentation.encoder, config.segmentation.encoder_weights)


def build_plan(
    config: ExperimentConfig,
    layout: RunLayout,
    data_root: Path,
    methods: list[str],
    env: dict,
    progress: bool = True,
) -> list[Stage]:
    """Validate everything that can be validated without training, then list the stages."""
    from fusion.methods import is_trainable

    rows = table_rows(config, methods)
    if rows and not is_labelled(data_root):
        raise DataError(
            f"{data_root}: a fusion-only pair folder (ir/ vi/, no labels) cannot be segmented; "
            "give an MSRS or MFNet root, or fuse and measure it with pipelines/evaluate_fusion.py"
        )
    validate_root(data_root, check_labels=bool(rows))  # label values too, before anything trains
    check_methods(config, methods, data_root)
    check_collisions(rows)
    if rows:
        check_segmentation(config)
    manifests = Manifests()
    bases = {method: variant_config(config, method)[0] for method in methods}
    fused_rows = {row.method: row for row in rows if row.method}
    stages: list[Stage] = []
    for method in methods:
        if is_trainable(bases[method]):
            stages.append(fusion_stage(config, layout, data_root, manifests, env, progress, method))
    for method in methods:
        row = fused_rows[method]
        options = method_options(config, method)
        stages.append(
            fuse_stage(
                row, layout, data_root, manifests, progress=progress, options=options, base=bases[method]
            )
        )
        stages.append(quality_stage(row, layout, data_root, config.metrics_convention, manifests))
    for row in rows:
        for k in range(config.seeds):
            stages.append(
                segmentation_stage(
                    config,
                    layout,
                    data_root,
                    row,
                    config.seed + k,
                    manifests,
                    env,
                    fused=layout.fused(row.method) if row.method else None,
                    upstream=(f"fuse:{row.method}",) if row.method else (),
                    progress=progress,
                )
            )
    stages.append(report_stage(stages, layout, data_root, config))
    return stages


__all__ = ["build_plan", "check_collisions", "method_row", "table_rows"]
