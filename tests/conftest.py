"""Shared fixtures: a small generated MSRS-layout set, pairs made from the photos scikit-image
ships, and the real-data option.

Nothing from a third-party dataset is in the repository. Tests that need real infrared-visible
pairs are marked ``real_data`` and read them from the folder given on the command line::

    python -m pytest -m real_data --real-data=../shared/data

(``mfnet-156/``, ``msrs-test-40/`` and ``roadscene-50/`` inside it). Without ``--real-data``
they are deselected, and pytest's summary line says how many. Write ``--real-data=DIR``: pytest
reads a separate ``DIR`` outside the clone as a path to collect before it knows the option.

Tests that submit to a real Slurm (the launcher's, tests/test_slurm.py) are marked ``slurm`` and
deselected the same way unless ``--slurm`` says a cluster is up (``.ci/start-slurm`` starts a
one-node one on this machine; ``.ci/run`` does that, then runs them)::

    .ci/start-slurm && python -m pytest -m slurm --slurm
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fusion.methods  # noqa: F401 - the method registry, which configs read
from msrs.synthetic import write_synthetic

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = "real_data"
SLURM = "slurm"


EXAMPLE = REPO / "examples" / "fusionseg-example"


def install_plugin(
    folder, entry_points: str, package=EXAMPLE / "fusionseg_example", name="fusionseg_example"
):
    """A site folder holding a copy of the plugin package and the metadata an installer writes
    (what ``pip install`` leaves, without touching this environment): returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    if package is not None:
        shutil.copytree(package, folder / name)
    info = folder / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    return folder


EXAMPLE_POINTS = """\
    [fusionseg.methods]
    contrast = fusionseg_example.rules
    tinynet = fusionseg_example.network
"""


def run_pipeline(
    script: str, *args: str, timeout: int = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``pipelines/<script>`` with ``args`` as a user would, from the repository root
    (``env``: variables added to this process's environment)."""
    return subprocess.run(
        [sys.executable, str(REPO / "pipelines" / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def run_pipeline_here(
    script: str, *args: str, paths: tuple = (), cwd: Path = REPO
) -> subprocess.CompletedProcess:
    """:func:`run_pipeline` in this process, for commands that train nothing (refusals, dry runs,
    ``--help``): the script's ``main`` through ``_common.run_main`` (so its exit code and one-line
    error are what a user sees), run in ``cwd``, with ``sys.argv``, the working folder, the import
    path and the method registry restored afterwards; ``paths`` (a plugin's site folder, a folder
    of the user's modules) come first on the import path while it runs, and what was imported
    from them is forgotten. Spares each call the interpreter's
    and torch's start-up (~6 s here)."""
    from fusion.methods import _REGISTRY, _plugins, available_methods

    available_methods()  # the built-ins registered before the registry is saved
    argv, home, path, registry = sys.argv, os.getcwd(), list(sys.path), dict(_REGISTRY)
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        os.chdir(cwd)
        sys.path[:0] = [*map(str, paths), str(REPO / "pipelines")]
        importlib.invalidate_caches()
        sys.argv = [str(REPO / "pipelines" / script), *map(str, args)]
        _plugins.cache_clear()
        module = importlib.import_module(Path(script).stem)
        common = importlib.import_module("_common")
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                common.run_main(module.main)
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv, sys.path[:] = argv, path
        os.chdir(home)
        for name, module in list(sys.modules.items()):
            where = getattr(module, "__file__", None) or ""
            if any(where.startswith(str(folder)) for folder in paths):
                del sys.modules[name]
        _REGISTRY.clear()
        _REGISTRY.update(registry)
        _plugins.cache_clear()
    return subprocess.CompletedProcess(sys.argv, code, stdout.getvalue(), stderr.getvalue())


def fake_slurm(folder: Path, controller: str = "UP") -> dict:
    """Environment whose path starts with stand-ins for ``sbatch``, ``srun`` and ``scontrol``
    (``scontrol ping`` answering that the controller is ``controller``), for the launcher's
    checks on a machine without Slurm."""
    folder.mkdir(parents=True, exist_ok=True)
    for tool in ("sbatch", "srun", "scontrol"):
        script = folder / tool
        script.write_text(f"#!/bin/sh\necho 'Slurmctld(primary) at test-host is {controller}'\n")
        script.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}


def pytest_addoption(parser):
    parser.addoption(
        "--real-data",
        metavar="DIR",
        type=Path,
        help="folder holding the real pairs (mfnet-156/, msrs-test-40/, roadscene-50/) that the "
        "tests marked real_data read; without it those tests are deselected",
    )
    parser.addoption(
        "--slurm",
        action="store_true",
        help="a Slurm cluster answers sbatch here (.ci/start-slurm): run the tests marked slurm; "
        "without it they are deselected",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"{REAL_DATA}: reads real pairs from --real-data DIR (deselected without it)"
    )
    config.addinivalue_line("markers", f"{SLURM}: submits to a real Slurm (deselected without --slurm)")


def pytest_collection_modifyitems(config, items):
    off = [REAL_DATA] if config.getoption("--real-data") is None else []
    off += [] if config.getoption("--slurm") else [SLURM]
    deselected = [item for item in items if any(item.get_closest_marker(marker) for marker in off)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


@pytest.fixture(scope="session")
def real_data(request) -> Path:
    """The --real-data folder (only real_data tests use it; they are deselected without it)."""
    folder = request.config.getoption("--real-data")
    if folder is None or not folder.is_dir():
        raise pytest.UsageError(f"--real-data {folder}: folder not found")
    return folder


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """24 train + 10 test synthetic scenes at 64x80 in the MSRS layout (read-only: copy it
    before corrupting anything)."""
    root = tmp_path_factory.mktemp("synthetic") / "msrs"
    return write_synthetic(root, train=24, test=10, height=64, width=80, seed=7)


PHOTOS = ("astronaut", "chelsea", "coffee")  # scikit-image's bundled colour photos


def thermal_rendering(rgb: np.ndarray, seed: int = 0) -> np.ndarray:
    """A stand-in infrared image for a photo: its luminance blurred (thermal cameras are less
    sharp), partly inverted (warm and cold do not follow brightness), with sensor noise. Not a
    thermal image; enough to give a fusion method two different, structured sources."""
    from scipy.ndimage import gaussian_filter

    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    height, width = luma.shape
    warm = np.hypot(*np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height))) < 0.35
    thermal = 0.6 * gaussian_filter(255 - luma, 2.0) + 90 * gaussian_filter(warm.astype(float), 6)
    thermal += np.random.default_rng(seed).normal(0, 3, thermal.shape)
    return np.clip(thermal, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def photo_pairs(tmp_path_factory) -> Path:
    """A fusion-only pair folder (``ir/``, ``vi/``, JPEG as RoadScene ships) of three pairs made
    from scikit-image's bundled photos (:data:`PHOTOS`, each its own size): visible = the photo,
    infrared = :func:`thermal_rendering`. Read-only."""
    import skimage.data

    folder = tmp_path_factory.mktemp("photos")
    for sub in ("ir", "vi"):
        (folder / sub).mkdir()
    for index, name in enumerate(PHOTOS):
        rgb = getattr(skimage.data, name)()
        Image.fromarray(rgb).save(folder / "vi" / f"{name}.jpg", quality=95)
        Image.fromarray(thermal_rendering(rgb, index)).save(folder / "ir" / f"{name}.jpg", quality=95)
    return folder


def write_mfnet(msrs_root: Path, out: Path, val: int = 6) -> Path:
    """The scenes of an MSRS-layout root rewritten in MFNet's release layout (msrs/mfnet.py):
    4-channel ``images/`` (visible RGB + infrared), ``labels/``, and the lists ``train.txt``
    (all but the last ``val`` training names), ``val.txt`` and ``test.txt``."""
    from msrs.layout import list_split

    for sub in ("images", "labels"):
        (out / sub).mkdir(parents=True)
    lists = {}
    for split in ("train", "test"):
        pairs = list_split(msrs_root, split)
        for pair in pairs:
            rgba = np.dstack([pair.read_vi(), pair.read_ir()])
            Image.fromarray(rgba, "RGBA").save(out / "images" / f"{pair.name}.png")
            Image.fromarray(pair.read_label()).save(out / "labels" / f"{pair.name}.png")
        lists[split] = [pair.name for pair in pairs]
    lists["train"], lists["val"] = lists["train"][:-val], lists["train"][-val:]
    for split, names in lists.items():
        (out / f"{split}.txt").write_text("\n".join(names) + "\n")
    return out


@pytest.fixture(scope="session")
def mfnet_root(synthetic_root, tmp_path_factory) -> Path:
    """The 34 synthetic scenes of ``synthetic_root`` in MFNet's layout: 18 train, 6 val, 10 test
    (read-only: copy it before corrupting anything)."""
    return write_mfnet(synthetic_root, tmp_path_factory.mktemp("mfnet") / "mfnet")
