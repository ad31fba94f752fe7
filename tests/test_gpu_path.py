"""What the GPU path does that a CPU can do, done on the CPU: mixed precision (bf16 autocast, fp16
with a GradScaler), channels_last, loader workers, no read of a device value inside a training
step, evaluation counted where the predictions are, the resources a run hands out, and the
pretrained weights a cluster node reads from its cache."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from configs.schema import ConfigError, RuntimeConfig, load_config
from fusion.methods import trainable_methods
from tests.conftest import REPO

TINY = REPO / "configs" / "tiny.yaml"


# ----------------------------------------------------------------------------- precision switches


@pytest.mark.parametrize(
    "switches",
    [
        ["runtime.amp=bf16"],
        ["runtime.amp=fp16"],
        ["runtime.channels_last=on"],
        ["segmentation.num_workers=2"],
    ],
    ids=["bf16", "fp16-scaler", "channels-last", "workers"],
)
def test_segmentation_trains_under_each_gpu_switch(switches, synthetic_root, tmp_path):
    from segmentation.train import train_segmentation

    config = load_config(TINY, ["segmentation.epochs=4", "segmentation.freeze_epochs=1", *switches])
    metrics = train_segmentation(config, synthetic_root, "visible", tmp_path, seed=0, progress=False)
    history = pd.read_csv(tmp_path / "history.csv")
    assert np.isfinite(history["loss"]).all() and history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert np.isfinite(metrics["miou"])
    expected = {"runtime.amp=bf16": "bfloat16", "runtime.amp=fp16": "float16"}.get(switches[0], "fp32")
    assert metrics["precision"] == expected
    assert (history["outside_seconds"] >= 0).all()  # the time outside the steps, per epoch


@pytest.mark.parametrize("method", ["sspfusion", "didfuse"])
@pytest.mark.parametrize("switches", [["runtime.amp=bf16"], ["runtime.amp=fp16", "runtime.channels_last=on"]])
def test_fusion_trains_under_mixed_precision(method, switches, synthetic_root, tmp_path):
    from fusion.training import train

    # batches of 4 (4 steps an epoch): fp16's GradScaler skips its first steps while it finds its
    # scale (from 2^16)
    sizes = ["fusion.batch_size=4", "didfuse.batch_size=4", "fusion.fusion_epochs=4", "didfuse.epochs=4"]
    summary = train(method, load_config(TINY, [*switches, *sizes]), synthetic_root, tmp_path, progress=False)
    history = pd.read_csv(tmp_path / "history.csv")
    assert np.isfinite(history["total"]).all()
    last_phase = history[history["phase"] == history["phase"].iloc[-1]]["total"]
    assert last_phase.iloc[-1] < last_phase.iloc[0], history
    assert summary["precision"] == ("bfloat16" if "runtime.amp=bf16" in switches else "float16")


def test_a_loss_under_autocast_gets_float32_from_the_network():
    from runtime.precision import Precision, autocast_view

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return {"out": self.conv(x), "also": [self.conv(x)]}

        def encode(self, x):
            return self.conv(x)

    net, cpu = Net(), torch.device("cpu")
    bf16 = Precision(torch.bfloat16, False, False, False)
    view = autocast_view(net, bf16, cpu)
    x = torch.rand(1, 1, 8, 8)
    with bf16.autocast(cpu):
        assert net.encode(x).dtype == torch.bfloat16  # what the loss would get without the view
    assert view.encode(x).dtype == torch.float32 and view.conv(x).dtype == torch.float32
    assert view(x)["out"].dtype == torch.float32 and view(x)["also"][0].dtype == torch.float32
    assert view.conv.weight is net.conv.weight
    assert autocast_view(net, Precision(None, False, False, False), cpu) is net


def test_sspfusion_structure_targets_are_float32_under_autocast():
    from fusion.sspfusion.model import structure_target

    features = torch.randn(2, 4, 16, 16)
    exact = structure_target(features)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = structure_target(features)
    assert under.dtype == torch.float32 and torch.equal(under, exact)


def test_bf16_only_where_the_gpu_runs_it_natively(monkeypatch):
    from runtime import precision

    cuda = torch.device("cuda", 0)
    for major, expected in [(7, torch.float16), (8, torch.bfloat16), (9, torch.bfloat16)]:
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, m=major: (m, 0))
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # counts emulation
        chosen = precision.resolve_precision(RuntimeConfig(), cuda)
        assert chosen.dtype == expected and chosen.scaler == (expected == torch.float16), major
    assert precision.resolve_precision(RuntimeConfig(), torch.device("cpu")).dtype is None


def test_deterministic_algorithms_on_for_the_cpu_off_for_cuda():
    from runtime.device import deterministic

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert deterministic(RuntimeConfig(), cpu) and not deterministic(RuntimeConfig(), cuda)
    assert deterministic(RuntimeConfig(deterministic="on"), cuda)
    assert not deterministic(RuntimeConfig(deterministic="off"), cpu)
    with pytest.raises(ConfigError, match="runtime.deterministic"):
        load_config(TINY, ["runtime.deterministic=sometimes"])


# ----------------------------------------------------------------------------- no wait in the step


@contextlib.contextmanager
def no_device_reads_by_the_project():
    """Fail when project code (not torch's own) reads a tensor's value back to Python: what makes
    a GPU step wait for the device."""
    project = str(REPO)
    venv = str(REPO / ".venv")

    def guarded(name, original):
        def read(self, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if caller.startswith(project) and not caller.startswith(venv) and "/tests/" not in caller:
                raise AssertionError(f"{name} called by {caller}:{sys._getframe(1).f_lineno}")
            return original(self, *args, **kwargs)

        return read

    names = ("item", "tolist", "__float__", "__bool__", "numpy", "cpu")
    originals = {name: getattr(torch.Tensor, name) for name in names}
    try:
        for name, original in originals.items():
            setattr(torch.Tensor, name, guarded(name, original))
        yield
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def test_the_segmentation_step_reads_nothing_back(synthetic_root):
    from runtime.distributed import Dist
    from runtime.precision import resolve_precision
    from segmentation.data import AugmentedSplit, load_split, train_transform
    from segmentation.losses import DiceCELoss
    from segmentation.model import model_from_config
    from segmentation.train import train_one_epoch

    config = load_config(TINY)
    images, labels, _ = load_split(synthetic_root, "train", "visible")
    dataset = AugmentedSplit(images, labels, train_transform((48, 64), (0.5, 2.0)), 0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4)
    model = model_from_config(config.segmentation)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    cpu = torch.device("cpu")
    precision = resolve_precision(config.runtime, cpu)
    with no_device_reads_by_the_project():
        sums = train_one_epoch(
            model, loader, DiceCELoss(1, 1), optimizer, precision.make_scaler(cpu), precision, cpu
        )
    assert sums.images == len(dataset) and np.isfinite(sums.means(Dist())["loss"])


@pytest.mark.parametrize("method", trainable_methods())
def test_a_fusion_step_reads_nothing_back(method, photo_pairs):
    from fusion.data import crops, make_loader, training_pairs
    from fusion.methods.learned import recipe
    from fusion.training import LossStep, run_epoch, start_phase
    from runtime.distributed import Dist
    from runtime.precision import resolve_precision

    config, cpu = load_config(TINY), torch.device("cpu")
    learned = recipe(method)
    section = getattr(config, learned.config_section)
    model = learned.build_model(section)
    _, irs, vis = training_pairs(photo_pairs)
    precision = resolve_precision(config.runtime, cpu)
    for phase in learned.phases(section):
        optimizer = start_phase(model, phase)
        loader = make_loader(crops(phase.augment, irs, vis, phase.crop_size, 0), 2, Dist(), 0, 0)
        step = LossStep(model, phase, precision, cpu)
        with no_device_reads_by_the_project():
            sums = run_epoch(step, loader, optimizer, precision.make_scaler(cpu), precision, cpu)
        assert np.isfinite(sums.means(Dist())["total"])


# ----------------------------------------------------------------------------- evaluation


def test_confusion_counted_where_the_predictions_are_equals_numpy(synthetic_root):
    from segmentation.data import load_split
    from segmentation.evaluate import confusion_of_split, predict
    from segmentation.model import model_from_config

    config = load_config(TINY)
    images, labels, _ = load_split(synthetic_root, "test", "visible")
    labels[0, :3] = 255
    torch.manual_seed(0)
    model = model_from_config(config.segmentation).eval()
    cpu = torch.device("cpu")
    per_image = confusion_of_split(model, images, labels, cpu, batch_size=3).numpy()
    predictions = predict(model, images, cpu, batch_size=5)
    for image in range(len(images)):
        keep = labels[image] != 255
        index = labels[image][keep].astype(np.int64) * 9 + predictions[image][keep]
        assert np.array_equal(per_image[image], np.bincount(index, minlength=81).reshape(9, 9))


# ----------------------------------------------------------------------------- resources


def test_cpus_come_from_the_affinity_and_the_quota_and_are_shared_among_ranks(tmp_path, monkeypatch):
    from runtime import device

    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: set(range(12)))
    quota = tmp_path / "cpu.max"
    quota.write_text("max 100000\n")
    assert device.available_cpus(quota) == 12
    quota.write_text("400000 100000\n")
    assert device.available_cpus(quota) == 4
    monkeypatch.setattr(device, "available_cpus", lambda: 12)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert device.cpu_share(RuntimeConfig()) == 3
    assert device.cpu_share(RuntimeConfig(threads=5)) == 5
    from segmentation.data import loader_workers

    assert loader_workers(-1, torch.device("cuda", 0), 3) == 2
    assert loader_workers(-1, torch.device("cpu"), 3) == 0
    assert loader_workers(-1, torch.device("cuda", 0), 40) == 16


def test_jobs_get_the_visible_gpus_each_their_own():
    from pipelines.engine.parallel import GpuPool, visible_gpus

    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,5"}) == ["2", "5"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-ab12,GPU-cd34"}) == ["GPU-ab12", "GPU-cd34"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    pool = GpuPool(["2", "5"])
    first, second = pool.take(), pool.take()
    assert {first, second} == {"2", "5"}
    pool.give_back(second)  # the child on the second GPU ends first
    assert pool.take() == second  # the next child takes the free GPU, not index % count
    assert GpuPool([]).take() is None


def test_workers_start_by_fork_whatever_python_defaults_to(synthetic_root):
    from segmentation.data import START_METHOD, AugmentedSplit, load_split, train_transform, training_loader

    images, labels, _ = load_split(synthetic_root, "train", "visible")
    dataset = AugmentedSplit(images, labels, train_transform((48, 64), (1.0, 1.0)), 0)
    loader = training_loader(dataset, 4, torch.utils.data.RandomSampler(dataset), 1, False)
    assert START_METHOD == "fork" and loader.multiprocessing_context.get_start_method() == "fork"
    assert len(list(loader)) == len(dataset) // 4


def test_slurm_fuse_jobs_of_rules_ask_for_no_gpu(synthetic_root, tmp_path):
    from pipelines.engine import RunLayout, build_plan, environment
    from pipelines.engine.runner import plan_status
    from pipelines.engine.slurm import describe, job_plan

    config = load_config(REPO / "configs" / "paper.yaml", ["segmentation.encoder_weights=null"])
    config.segmentation.freeze_random_encoder = True
    config.data.synthetic_allowed = True
    layout = RunLayout.default("paper", tmp_path)
    stages = build_plan(config, layout, synthetic_root, ["sspfusion", "gtf"], environment(config), False)
    plan_status(stages)
    jobs = job_plan(stages, [], "run_all")
    kinds = {job.keys[0]: job.kind for job in jobs}
    assert kinds["fuse:gtf"] == "fuse_rule" and kinds["fuse:sspfusion"] == "fuse"
    lines = describe(jobs, config.slurm)
    assert "fuse:gtf" in next(line for line in lines if "fuse:gtf" in line) and "0 GPU" in next(
        line for line in lines if " fuse:gtf" in line
    )
    assert "1 GPU" in next(line for line in lines if " fuse:sspfusion" in line)


# ----------------------------------------------------------------------------- weights offline


def _fake_hub_cache(cache, encoder: str = "mobilenet_v2"):
    """A Hugging Face cache holding smp's files for ``encoder`` (random weights of the right
    shapes, as the real download would hold ImageNet's)."""
    import segmentation_models_pytorch as smp
    from safetensors.torch import save_file

    from segmentation.pretrained import hub_weights

    hub = hub_weights(encoder, "imagenet")
    snapshot = cache / f"models--{hub.repo_id.replace('/', '--')}" / "snapshots" / hub.revision
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    torch.manual_seed(1)
    encoder_state = smp.encoders.get_encoder(encoder, weights=None).state_dict()
    save_file(
        {key: value.contiguous() for key, value in encoder_state.items()}, snapshot / "model.safetensors"
    )
    return hub, snapshot / "model.safetensors", encoder_state


def test_smp_weights_load_from_the_cache_and_their_bytes_are_the_identity(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from runtime.files import file_sha256
    from segmentation.model import build_model
    from segmentation.pretrained import require_weights, weights_digest

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(
        ConfigError,
        match=r"not in this machine's.*fetch_weights.py --encoder mobilenet_v2 --weights imagenet",
    ):
        require_weights("mobilenet_v2", "imagenet")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    _, path, state = _fake_hub_cache(tmp_path / "hub")
    assert require_weights("mobilenet_v2", "imagenet") == path
    assert weights_digest("imagenet", "mobilenet_v2") == file_sha256(path)
    model = build_model("mobilenet_v2", "imagenet")  # no network here: it must come from the cache
    assert all(torch.equal(model.encoder.state_dict()[key], value) for key, value in state.items())
    with pytest.raises(ConfigError, match="cannot be loaded offline"):
        require_weights("tu-resnet18", "imagenet")


def test_a_dry_run_names_missing_weights_and_the_command_that_fetches_them(tmp_path, synthetic_root):
    import os

    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable,
        str(REPO / "pipelines" / "run_all.py"),
        "--config",
        str(TINY),
        "--data-root",
        str(synthetic_root),
        "--out",
        str(tmp_path / "run"),
        "--set",
        "segmentation.encoder_weights=imagenet",
        "--dry-run",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.safetensors" in lines[0]
    assert "python pipelines/fetch_weights.py --encoder mobilenet_v2 --weights imagenet" in lines[0]
    _fake_hub_cache(tmp_path / "hub")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_gpu_check_without_a_gpu_says_so_and_exits_non_zero():
    result = subprocess.run(
        [sys.executable, str(REPO / "pipelines" / "gpu_check.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "no CUDA GPU" in result.stderr and "Traceback" not in result.stderr


def test_normalising_copies_the_statistics_to_a_device_once(monkeypatch):
    from segmentation import data

    images = torch.zeros((2, 4, 4, 3), dtype=torch.uint8)
    first = data.normalise(images)
    monkeypatch.setattr(data.torch, "from_numpy", lambda array: pytest.fail("statistics copied again"))
    assert torch.equal(data.normalise(images), first)


def test_a_stage_leaves_its_process_group(tmp_path):
    import torch.distributed as dist

    sys.path.insert(0, str(REPO / "pipelines"))
    import _common

    def main():
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
        return 0

    with pytest.raises(SystemExit) as stopped:
        _common.run_main(main)
    assert stopped.value.code == 0 and not dist.is_initialized()


def test_the_gpu_checks_parts_run_on_the_cpu(synthetic_root, tmp_path):
    """What gpu_check.py does on a GPU, at tiny sizes on the CPU: a lent GPU's few minutes must
    not be spent on a typo."""
    sys.path.insert(0, str(REPO / "pipelines"))
    import gpu_check

    config = load_config(TINY, ["segmentation.epochs=2", "segmentation.freeze_epochs=1"])
    run = gpu_check.segmentation_run(config, synthetic_root, tmp_path / "seg", 2)
    assert run["stopped"] == {"stopped_after_epoch": 1} and np.isfinite(run["metrics"]["miou"])
    rates = gpu_check._rates(config, synthetic_root, torch.device("cpu"), steps=1, size=(48, 64))
    paper = load_config(REPO / "configs" / "paper.yaml")
    projection = gpu_check._projection(paper, rates)
    rows = len(paper.inputs) + len(paper.methods)  # 2 single-modality rows and 16 methods
    assert rows == 18 and projection["table2_rows"] == rows and projection["table2_gpu_hours"] > 0
