"""A stage: one unit of work of an experiment with its own output folder, ``done.json`` and
identity (what its result depends on, computed once its upstream stages' outputs are known)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from configs.schema import ToolError
from pipelines.engine.identity import Identity
from segmentation.rows import Row

STAGE_KINDS = ("fusion", "fuse", "quality", "segmentation", "report")


class UpstreamError(ToolError, RuntimeError):
    """A selected stage reads a stage that is not current and is not selected to run first."""


@dataclass
class Stage:
    """One unit of work with its own output folder and ``done.json``."""

    key: str  # unique, e.g. "segmentation:fused:gtf:seed0"
    kind: str  # one of STAGE_KINDS
    folder: Path
    identify: Callable[[dict[str, str]], Identity] = field(repr=False)  # upstream outputs -> id
    run: Callable[[bool, str], object] = field(repr=False)  # (resume, identity digest) -> result
    output: Callable[[], str] = field(repr=False)  # digest of what the stage wrote
    describe: str = ""
    upstream: tuple[str, ...] = ()  # keys of the stages it reads
    cache: bool = True  # the report is cheap and rebuilt whenever it is selected
    row: Row | None = None  # fuse, quality, segmentation stages: the Table 2 row they serve
    seed: int | None = None  # segmentation stages: the seed
    resources: str = ""  # the slurm: section its job asks for (SlurmConfig); empty: its kind's
    status: str = ""  # filled by plan_status
    reason: str = ""
    identity: Identity | None = field(default=None, repr=False)

    @property
    def resource_kind(self) -> str:
        return self.resources or self.kind

    def matches(self, selector: str) -> bool:
        """``fusion``, ``fuse``, ``segmentation`` ..., a stage key, or ``input=NAME`` for the
        segmentation runs of one table row."""
        if selector.startswith("input="):
            row = selector.removeprefix("input=")
            return self.kind == "segmentation" and self.row is not None and self.row.name == row
        return selector in (self.kind, self.key)


__all__ = ["STAGE_KINDS", "Stage", "UpstreamError"]
