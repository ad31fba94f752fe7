"""Shared command-line plumbing for the pipeline scripts (argument parsing and error exit only).

Every script puts the repository on sys.path (so it runs without installing the package),
turns the tool's own errors into a one-line message and a non-zero exit, and never prints a
traceback for bad input; any other exception is a bug and keeps its traceback.
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

import fusion.methods  # noqa: E402, F401 - the method registry, which configs read (use_method_registry)
from configs.schema import ExperimentConfig, ToolError, load_config  # noqa: E402


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
    """The config of ``--config`` with ``--set`` overrides, and those a script adds for its own
    options (``args.typed``: override -> the option as typed, named in errors)."""
    return load_config(args.config, args.overrides, getattr(args, "typed", None))


def is_main_process() -> bool:
    """False on the ranks other than 0 of a torchrun launch (they print and mark nothing)."""
    return os.environ.get("RANK", "0") == "0"


def run_main(main) -> None:
    """Run ``main()``; the tool's own errors (:class:`configs.schema.ToolError`: bad input, a
    setting, a run that cannot go on) end the program with one line on stderr; anything else
    is a bug and keeps its traceback."""
    try:
        code = main()
    except ToolError as error:
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
