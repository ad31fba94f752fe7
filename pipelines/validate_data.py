"""Validate a data root (MSRS, MFNet, or a fusion-only ir/ vi/ pair folder) before any stage uses it.

    python pipelines/validate_data.py --data-root DIR [--check-labels]

The layout is read from the folder's contents (msrs/layout.py). Exit 0 with a one-line summary
(layout, pairs per split, day and night scenes of the test split), or exit 2 with a one-line
error naming the file.
"""

import argparse
import time

import _common

from msrs.layout import describe_root, is_labelled, validate_root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.add_data_root_arg(parser, required=True)
    parser.add_argument(
        "--check-labels", action="store_true", help="decode every label and check its values (slower)"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    root = args.data_root
    counts = validate_root(root, check_labels=args.check_labels)
    took = time.perf_counter() - start
    facts = describe_root(root)
    times = facts["day_night"]
    summary = ", ".join(f"{split}: {n}" for split, n in counts.items())
    labels = "" if is_labelled(root) else " (no labels)"
    checked = " (label values checked)" if args.check_labels else ""
    print(
        f"ok: {root}: {facts['layout']} layout{labels}, {summary}; {times['split']}: "
        f"{times['day']} day, {times['night']} night{checked} in {took:.2f} s"
    )
    return 0


if __name__ == "__main__":
    _common.run_main(main)
