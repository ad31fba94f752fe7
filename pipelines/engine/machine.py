"""What a stage runs with on this machine: the device, the resolved precision, CPU threads and
the versions of the libraries that can change its numbers (recorded in done.json, compared
between rows by the report), and the runtime switches a training stage's identity holds."""

from __future__ import annotations

import platform
import sys
from functools import cache
from importlib import metadata

from configs.schema import ExperimentConfig
from runtime.device import cpu_share, pick_device

# the libraries whose version can change a stage's numbers (their kernels, defaults, resampling)
LIBRARIES = (
    "torch",
    "torchvision",
    "segmentation-models-pytorch",
    "timm",
    "albumentations",
    "opencv-python-headless",
    "numpy",
    "scipy",
    "kornia",
    "PyWavelets",
    "pillow",
)


@cache
def library_versions() -> dict[str, str]:
    """Installed version of each of :data:`LIBRARIES` (``absent`` for one that is not)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def requested_runtime(config: ExperimentConfig) -> dict:
    """The runtime switches that change numbers, as requested (``auto`` stays ``auto``): the
    ``runtime`` part of a training stage's identity. What they resolved to on the machine
    (device, precision, threads) is recorded in done.json and compared by the report, so that
    a plan on another machine (a CPU login node reading GPU results) keeps them cached."""
    runtime = config.runtime
    return {
        "amp": runtime.amp,
        "channels_last": runtime.channels_last,
        "cudnn_benchmark": runtime.cudnn_benchmark,
        "deterministic": runtime.deterministic,
    }


def environment(config: ExperimentConfig) -> dict:
    """What a stage runs with on this machine (recorded in done.json, compared by the report):
    device, resolved precision, CPU threads, library versions."""
    device = pick_device(config.runtime.device)
    return {
        "device": str(device),
        "precision": precision_name(config, device),
        "threads": cpu_share(config.runtime),
        "libraries": library_versions(),
        "torch": metadata.version("torch"),
        "smp": metadata.version("segmentation-models-pytorch"),
        "python": platform.python_version(),
        "platform": sys.platform,
    }


def precision_name(config: ExperimentConfig, device) -> str:
    """``fp32`` without autocast, else the autocast dtype (``bfloat16``, ``float16``)."""
    from runtime.precision import resolve_precision

    return resolve_precision(config.runtime, device).name


__all__ = ["LIBRARIES", "environment", "library_versions", "precision_name", "requested_runtime"]
