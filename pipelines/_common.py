"""Shared command-line plumbing for the pipeline scripts (argument parsing and error exit only).

Every script puts the repository on sys.path (so it runs without installing the package),
turns the project's own errors into a one-line message and a non-zero exit, and never prints a
traceback for bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.stdout.reconfigure(line_buffering=True)  # stage lines reach a log file as they happen

from configs.schema import ConfigError, ExperimentConfig, load_config  # noqa: E402
from msrs.layout import DataError  # noqa: E402
from pipelines.engine.locks import StageBusy  # noqa: E402
from pipelines.engine.plan import UpstreamError  # noqa: E402

# ForeignFolder and the report's EvidenceError are ValueErrors
USER_ERRORS = (ConfigError, DataError, UpstreamError, StageBusy, FileNotFoundError, ValueError)


def add_config_args(parser: argparse.ArgumentParser, default: str = "configs/quick.yaml") -> None:
    parser.add_argument(
        "--config", default=str(REPO / default), help="experiment YAML (default: %(default)s)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. segmentation.epochs=3 (repeatable)",
    )


def add_data_root_arg(parser: argparse.ArgumentParser, labelled: bool = False, **kwargs) -> None:
    """``--data-root``: any layout msrs.layout reads (only labelled ones where ``labelled``)."""
    kinds = "an MSRS or MFNet root" if labelled else "an MSRS or MFNet root, or an ir/ vi/ pair folder"
    default = (
        "" if kwargs.get("required") else " (default: config data.root, else the built-in synthetic scenes)"
    )
    parser.add_argument("--data-root", type=Path, help=kinds + default, **kwargs)


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    return load_config(args.config, args.overrides)


def is_main_process() -> bool:
    """False on the ranks other than 0 of a torchrun launch (they print and mark nothing)."""
    return os.environ.get("RANK", "0") == "0"


def run_main(main) -> None:
    """Run ``main()``; the project's errors end the program with one line on stderr."""
    try:
        code = main()
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to continue from the last checkpoint", file=sys.stderr)
        sys.exit(130)
    finally:
        if "torch.distributed" in sys.modules:  # a torchrun rank leaves its process group
            from runtime.distributed import close_distributed

            close_distributed()
    sys.exit(code or 0)
