"""Validate an MSRS root (or a fusion-only ir/ vi/ pair folder) before any stage uses it.

    python pipelines/validate_data.py --data-root DIR [--check-labels]

Exit 0 with a one-line summary, or exit 2 with a one-line error naming the file.
"""

import argparse
import time
from pathlib import Path

import _common

from msrs.layout import SPLITS, list_pairs, validate_pairs, validate_root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument(
        "--check-labels", action="store_true", help="decode every label and check its values (slower)"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    root = args.data_root
    if root.is_dir() and not any((root / split).is_dir() for split in SPLITS) and (root / "ir").is_dir():
        pairs = list_pairs(root)
        validate_pairs(pairs)
        counts = {"pairs (no labels)": len(pairs)}
    else:
        counts = validate_root(root, check_labels=args.check_labels)
    took = time.perf_counter() - start
    summary = ", ".join(f"{split}: {n}" for split, n in counts.items())
    labels = " (label values checked)" if args.check_labels else ""
    print(f"ok: {root}: {summary}{labels} in {took:.2f} s")
    return 0


if __name__ == "__main__":
    _common.run_main(main)
