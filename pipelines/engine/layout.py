"""Where every stage of one experiment writes: the ``runs/<exp>/...`` layout, in one place.

::

    <out>/data/                          the built-in synthetic scenes (when no MSRS root is given)
    <out>/fusion/sspfusion/              model.pt, checkpoint.pt, history.csv, preview.png
    <out>/fused/<method>/<split>/        fused images, MSRS names
    <out>/quality/<method>/              per_image.csv (fusion metrics of the test split)
    <out>/segmentation/<row>/seed<k>/    model.pt, checkpoint.pt, metrics.json, predictions/
    <out>/report/                        table2.*, table1.*, figures, provenance.json
    <out>/logs/                          one log per segmentation process of run_all --jobs

Every stage folder holds ``done.json`` once finished (:mod:`pipelines.engine.markers`).
"""

from __future__ import annotations

import os
from pathlib import Path

from fusion.methods import method_folder
from segmentation.rows import Row


def check_out_folder(out: str | Path) -> None:
    """``out`` can be made a folder and written to: not a file, not under a file, and its first
    existing ancestor writable; else ConfigError naming the path."""
    from configs.schema import ConfigError

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    existing = next(parent for parent in (out, *out.parents) if parent.exists())
    if not existing.is_dir():
        raise ConfigError(f"--out {out}: {existing} is a file, so no folder can be made under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: {existing} is not writable (permission denied)")


class RunLayout:
    """The folders of one experiment under ``out`` (default ``runs/<config name>``)."""

    def __init__(self, out: str | Path):
        """``out``: the experiment folder."""
        self.out = Path(out)

    @classmethod
    def default(cls, config_name: str, out: str | Path | None = None) -> RunLayout:
        """``out``, else ``runs/<config name>``; checked to be a folder that can be written."""
        out = Path(out) if out is not None else Path("runs") / config_name
        check_out_folder(out)
        return cls(out)

    @property
    def data(self) -> Path:
        return self.out / "data"

    @property
    def file_digests(self) -> Path:
        """The memo of input files' content digests (:class:`identity.FileDigests`)."""
        return self.out / ".file-digests.json"

    def fusion_model(self, method: str = "sspfusion") -> Path:
        """The training stage folder of a learned fusion method (its ``model.pt``)."""
        return self.out / "fusion" / method

    def fused(self, method: str) -> Path:
        return self.out / "fused" / method_folder(method)

    def quality(self, method: str) -> Path:
        return self.out / "quality" / method_folder(method)

    def segmentation(self, row: Row, seed: int) -> Path:
        return self.out / "segmentation" / row.folder / f"seed{seed}"

    @property
    def report(self) -> Path:
        return self.out / "report"

    @property
    def logs(self) -> Path:
        return self.out / "logs"


__all__ = ["RunLayout", "check_out_folder"]
