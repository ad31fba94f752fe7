"""The MSRS dataset: folder layout, pair listing and validation, synthetic MSRS-like scenes."""

from msrs.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, PALETTE
from msrs.layout import (
    DataError,
    Pair,
    list_pairs,
    list_split,
    read_ir,
    read_label,
    read_vi,
    validate_root,
)

__all__ = [
    "CLASS_NAMES",
    "IGNORE_INDEX",
    "NUM_CLASSES",
    "PALETTE",
    "DataError",
    "Pair",
    "list_pairs",
    "list_split",
    "read_ir",
    "read_label",
    "read_vi",
    "validate_root",
]
