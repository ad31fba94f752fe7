"""Write a set of synthetic MSRS-like scenes (MSRS layout) from the command line.

python pipelines/make_synthetic.py --out DIR [--seed S] [--train N] [--test N]
"""

import argparse
import time
from pathlib import Path

import _common

from configs.schema import SyntheticConfig
from msrs.layout import DataError
from msrs.synthetic import write_synthetic


def main() -> int:
    defaults = SyntheticConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--train", type=int, default=defaults.train)
    parser.add_argument("--test", type=int, default=defaults.test)
    parser.add_argument("--height", type=int, default=defaults.height)
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--night-fraction", type=float, default=defaults.night_fraction)
    args = parser.parse_args()
    if any((args.out / split).exists() for split in ("train", "test")):
        raise DataError(f"{args.out}: already holds a data set; choose an empty --out")
    start = time.perf_counter()
    write_synthetic(args.out, args.train, args.test, args.height, args.width, args.seed, args.night_fraction)
    print(
        f"wrote {args.train} train + {args.test} test scenes ({args.height}x{args.width}, "
        f"seed {args.seed}) to {args.out} in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    _common.run_main(main)
