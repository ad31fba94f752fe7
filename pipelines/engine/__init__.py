"""The stage engine: what an experiment runs, what identifies each result, and running it.

* :mod:`~pipelines.engine.plan`: an experiment's Table 2 rows and its stages, validated, in run order;
* :mod:`~pipelines.engine.stages`: the four stage builders (train fusion, fuse, quality, segmentation);
* :mod:`~pipelines.engine.report`: the report stage and its provenance;
* :mod:`~pipelines.engine.stage`: one stage (its key, folder, identity, upstream);
* :mod:`~pipelines.engine.runner`: cached / stale / resume / new, upstream first, running;
* :mod:`~pipelines.engine.identity`: what a result depends on, by content;
* :mod:`~pipelines.engine.code`: the code part of an identity;
* :mod:`~pipelines.engine.machine`: device, precision, threads and library versions;
* :mod:`~pipelines.engine.data_root`: the data a run reads (or the synthetic scenes it makes);
* :mod:`~pipelines.engine.layout`: where each stage writes (``runs/<exp>/...``);
* :mod:`~pipelines.engine.markers`: ``done.json``, checkpoint identity, moving aside;
* :mod:`~pipelines.engine.locks`: one process per stage folder;
* :mod:`~pipelines.engine.parallel`: segmentation runs side by side (``run_all --jobs``);
* :mod:`~pipelines.engine.slurm`: every stage a Slurm job (``run_all --launcher slurm``).
"""

from pipelines.engine.data_root import is_synthetic, resolve_data_root
from pipelines.engine.layout import RunLayout, check_out_folder
from pipelines.engine.machine import environment
from pipelines.engine.plan import build_plan, method_row, table_rows
from pipelines.engine.runner import check_selectors, plan_status, run_alone, run_plan, run_stage
from pipelines.engine.stage import STAGE_KINDS, Stage, UpstreamError
from pipelines.engine.stages import (
    fuse_stage,
    fusion_stage,
    method_options,
    quality_stage,
    segmentation_stage,
)

__all__ = [
    "RunLayout",
    "STAGE_KINDS",
    "Stage",
    "UpstreamError",
    "build_plan",
    "check_out_folder",
    "check_selectors",
    "environment",
    "fuse_stage",
    "fusion_stage",
    "is_synthetic",
    "method_options",
    "method_row",
    "plan_status",
    "quality_stage",
    "resolve_data_root",
    "run_alone",
    "run_plan",
    "run_stage",
    "segmentation_stage",
    "table_rows",
]
