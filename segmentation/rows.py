"""A Table 2 row: the images one segmentation network is trained and tested on.

A row is infrared images, visible images, or the images one fusion method made from both
(``fused``, with the method's name: a registered method, a config's variant, or
``external:<folder>``). The plan makes each row once (:meth:`Row.parse` reads the names a config
and the command line give); stages, run records and the report carry the row itself. Its
``name`` (``infrared``, ``fused:gtf``) is what stage keys, ``--only input=NAME`` and
metrics.json spell; its ``label`` is what Table 1 and Table 2 show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

INFRARED, VISIBLE, FUSED = "infrared", "visible", "fused"
FUSED_PREFIX = "fused:"  # a fused row's name: fused:<method>
SOURCES = (INFRARED, VISIBLE)  # rows of one modality, no fusion method

# the paper's Table 2 rows, in its order: rows take their place from it (others before SSPFusion)
PAPER_ORDER = (
    "Infrared",
    "Visible",
    "GTF",
    "DIDFuse",
    "AUIF",
    "RFN-Nest",
    "U2Fusion",
    "DeFusion",
    "UMF",
    "TarDAL",
    "DDFM",
    "ITFuse",
    "CMTFusion",
    "SSPFusion",
)
EXTERNAL_SUFFIX = " (external)"  # images made elsewhere never share a label with a built-in method


@dataclass(frozen=True)
class Row:
    """One Table 2 row. ``label`` defaults to the method's display name (``GTF``), a source's
    capitalised name (``Infrared``), or an external folder's name with :data:`EXTERNAL_SUFFIX`
    (``DDFM (external)``, in the paper's spelling where it is one of its rows)."""

    kind: str  # INFRARED, VISIBLE or FUSED
    method: str = ""  # FUSED rows: the fusion method's name
    label: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.kind not in (*SOURCES, FUSED) or (self.kind == FUSED) != bool(self.method):
            raise ValueError(f"not a Table 2 row: kind={self.kind!r}, method={self.method!r}")
        if not self.label:
            object.__setattr__(self, "label", self._default_label())

    @classmethod
    def parse(cls, name: str, label: str = "") -> Row:
        """The row a name spells: ``infrared``, ``visible`` or ``fused:<method>``."""
        if name in SOURCES:
            return cls(name, label=label)
        if not name.startswith(FUSED_PREFIX) or name == FUSED_PREFIX:
            raise ValueError(f"'{name}' is not a Table 2 row (infrared, visible or fused:<method>)")
        return cls(FUSED, name.removeprefix(FUSED_PREFIX), label)

    @classmethod
    def fused(cls, method: str, label: str = "") -> Row:
        return cls(FUSED, method, label)

    @property
    def name(self) -> str:
        return f"{FUSED_PREFIX}{self.method}" if self.method else self.kind

    @property
    def folder(self) -> str:
        """Its folder name under ``segmentation/``: ``fused-gtf``, ``fused-external-DDFM``."""
        from fusion.methods import method_folder

        return f"{FUSED}-{method_folder(self.method)}" if self.method else self.kind

    def _default_label(self) -> str:
        if not self.method:
            return self.kind.capitalize()
        from fusion.methods import display_name, external_folder

        folder = external_folder(self.method)
        if folder is None:
            return display_name(self.method)
        name = Path(folder.rstrip("/")).name
        paper = {row.lower(): row for row in PAPER_ORDER}
        return paper.get(name.lower(), name) + EXTERNAL_SUFFIX


def paper_name(label: str) -> str:
    """The paper's row a label stands for: ``DDFM (external)`` -> ``DDFM``."""
    return label.removesuffix(EXTERNAL_SUFFIX)


__all__ = [
    "EXTERNAL_SUFFIX",
    "FUSED",
    "FUSED_PREFIX",
    "INFRARED",
    "PAPER_ORDER",
    "Row",
    "SOURCES",
    "VISIBLE",
    "paper_name",
]
