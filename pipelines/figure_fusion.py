"""A qualitative figure: infrared | visible | each method's fused image, one row per pair.

    python pipelines/figure_fusion.py --data-root DIR --fused OUT/fused --methods sspfusion average
        gtf --pairs 00085D 00722N --output docs/figure.png [--all-split all] [--width 4.5]

--data-root is an ir/ + vi/ pair folder; --fused holds <method>/<split>/<name>.png as written by
pipelines/evaluate_fusion.py. The PNG is written atomically.
"""

import argparse
import io
from pathlib import Path

import _common
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from fusion.methods import method_folder
from msrs.layout import DataError
from runtime.files import write_bytes_atomic


def read_rgb(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: image not found")
    return np.asarray(Image.open(path).convert("RGB"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--fused", type=Path, required=True)
    parser.add_argument("--methods", nargs="+", required=True)
    parser.add_argument("--pairs", nargs="+", required=True, help="image names without extension")
    parser.add_argument("--split", default="all")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--width", type=float, default=2.6, help="inches per column")
    args = parser.parse_args()
    columns = ["infrared", "visible", *args.methods]
    fig, axes = plt.subplots(
        len(args.pairs),
        len(columns),
        squeeze=False,
        figsize=(args.width * len(columns), args.width * 0.75 * len(args.pairs)),
    )
    for row, name in enumerate(args.pairs):
        images = [
            read_rgb(args.data_root / "ir" / f"{name}.png"),
            read_rgb(args.data_root / "vi" / f"{name}.png"),
        ]
        images += [read_rgb(args.fused / method_folder(m) / args.split / f"{name}.png") for m in args.methods]
        for col, (title, image) in enumerate(zip(columns, images, strict=True)):
            axis = axes[row][col]
            axis.imshow(image)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(title, fontsize=10)
            if col == 0:
                axis.set_ylabel(name, fontsize=9)
    fig.tight_layout(pad=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    write_bytes_atomic(args.output, buffer.getvalue())
    print(f"-> {args.output} ({len(buffer.getvalue()) // 1024} KB)")
    return 0


if __name__ == "__main__":
    _common.run_main(main)
