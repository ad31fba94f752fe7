"""The stage engine: plan, stage identity, done markers and the run-folder layout.

* :mod:`~pipelines.engine.layout`: where each stage writes (``runs/<exp>/...``);
* :mod:`~pipelines.engine.identity`: what a result depends on, by content;
* :mod:`~pipelines.engine.markers`: ``done.json``, checkpoint identity, moving aside;
* :mod:`~pipelines.engine.stages`: the stages of an experiment and the plan;
* :mod:`~pipelines.engine.plan`: cached / stale / resume / new, upstream first, running;
* :mod:`~pipelines.engine.parallel`: segmentation runs side by side (``run_all --jobs``);
* :mod:`~pipelines.engine.slurm`: every stage a Slurm job (``run_all --launcher slurm``);
* :mod:`~pipelines.engine.report`: the report stage and its provenance.
"""

from pipelines.engine.layout import RunLayout, check_out_folder, input_slug, method_slug
from pipelines.engine.plan import (
    STAGE_KINDS,
    Stage,
    UpstreamError,
    check_selectors,
    plan_status,
    run_alone,
    run_plan,
    run_stage,
)
from pipelines.engine.stages import (
    build_plan,
    environment,
    fuse_stage,
    fusion_stage,
    input_names,
    is_synthetic,
    quality_stage,
    resolve_data_root,
    segmentation_stage,
)

__all__ = [
    "RunLayout",
    "Stage",
    "STAGE_KINDS",
    "UpstreamError",
    "build_plan",
    "check_out_folder",
    "check_selectors",
    "environment",
    "fuse_stage",
    "fusion_stage",
    "input_names",
    "input_slug",
    "is_synthetic",
    "method_slug",
    "plan_status",
    "quality_stage",
    "resolve_data_root",
    "run_alone",
    "run_plan",
    "run_stage",
    "segmentation_stage",
]
