"""torchrun with two gloo processes on the CPU gives what one process gives for the same global
batch and seed, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from tests.conftest import REPO

TINY = str(REPO / "configs" / "tiny.yaml")
pytestmark = pytest.mark.slow


def _run(script: str, args: list[str], processes: int) -> subprocess.CompletedProcess:
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            *launcher,
            str(REPO / "pipelines" / script),
            "--config",
            TINY,
            "--no-progress",
            "--set",
            "runtime.threads=1",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_segmentation_two_processes_match_one(synthetic_root, tmp_path):
    common = ["--input", "visible", "--data-root", str(synthetic_root)]
    _run("train_segmentation.py", [*common, "--out", str(tmp_path / "one")], 1)
    two = _run("train_segmentation.py", [*common, "--out", str(tmp_path / "two")], 2)
    assert two.stdout.count("mIoU") == 1  # rank 1 prints nothing
    one_run, two_run = (tmp_path / name / "segmentation" / "visible" / "seed0" for name in ("one", "two"))
    assert _files(one_run) == _files(two_run)  # rank 0 only, no temp files
    one = json.loads((one_run / "metrics.json").read_text())
    dist = json.loads((two_run / "metrics.json").read_text())
    assert dist["processes"] == 2 and one["processes"] == 1
    losses = [pd.read_csv(run / "history.csv")["loss"] for run in (one_run, two_run)]
    # BatchNorm is per rank on CPU (no SyncBatchNorm kernel there), hence the few-percent band.
    assert losses[0].to_numpy() == pytest.approx(losses[1].to_numpy(), rel=0.05)
    assert dist["pixel_accuracy"] == pytest.approx(one["pixel_accuracy"], abs=1.0)
    assert dist["miou"] == pytest.approx(one["miou"], abs=1.0)


# CMTFusion: BatchNorm (synchronised over the ranks) and layers its authors register but never call
@pytest.mark.parametrize("method", ["sspfusion", "cmtfusion"])
def test_fusion_two_processes_match_one(method, synthetic_root, tmp_path):
    common = ["--data-root", str(synthetic_root), "--method", method, "--set", "fusion.fusion_epochs=2"]
    _run("train_fusion.py", [*common, "--out", str(tmp_path / "one")], 1)
    two = _run("train_fusion.py", [*common, "--out", str(tmp_path / "two")], 2)
    assert two.stdout.count(" parameters, ") == 1
    folders = [tmp_path / name / "fusion" / method for name in ("one", "two")]
    assert _files(folders[0]) == _files(folders[1])
    summaries = [json.loads((f / "summary.json").read_text()) for f in folders]
    assert [s["processes"] for s in summaries] == [1, 2]
    histories = [pd.read_csv(f / "history.csv") for f in folders]
    assert histories[0]["total"].to_numpy() == pytest.approx(histories[1]["total"].to_numpy(), rel=1e-3)


def _sync_bn_rank(rank: int, world: int, init_file: str, x, grad_out, queue) -> None:
    import torch.distributed as dist

    from runtime.distributed import GlooSyncBatchNorm

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    bn = GlooSyncBatchNorm(3)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    part = x.chunk(world)[rank].clone().requires_grad_(True)
    out = bn(part)
    (out * grad_out.chunk(world)[rank]).sum().backward()
    grads = torch.stack([bn.weight.grad, bn.bias.grad])
    dist.all_reduce(grads)  # what DDP's gradient sum gives before its averaging
    # numpy copies: torch tensors cross the queue as shared-memory file descriptors, which the
    # parent cannot open once this process has exited (ConnectionResetError, seen once)
    tensors = (out, part.grad, grads, bn.running_mean, bn.running_var)
    queue.put((rank, *(tensor.detach().numpy().copy() for tensor in tensors)))
    dist.barrier()
    dist.destroy_process_group()


def test_gloo_sync_batchnorm_equals_whole_batch_batchnorm(tmp_path):
    """Two ranks with half a batch each give the outputs, input gradients, parameter gradients
    and running statistics of one BatchNorm2d over the whole batch."""
    import torch.multiprocessing as mp

    torch.manual_seed(1)
    x, grad_out = torch.randn(4, 3, 5, 6) * 3 + 1, torch.randn(4, 3, 5, 6)
    torch.manual_seed(0)
    reference = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-0.5, 0.5)
    whole = x.clone().requires_grad_(True)
    expected = reference(whole)
    (expected * grad_out).sum().backward()

    context = mp.get_context("spawn")
    queue = context.SimpleQueue()
    processes = [
        context.Process(target=_sync_bn_rank, args=(r, 2, str(tmp_path / "init"), x, grad_out, queue))
        for r in range(2)
    ]
    for p in processes:
        p.start()
    results = {item[0]: [torch.from_numpy(a) for a in item[1:]] for item in (queue.get() for _ in processes)}
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    out = torch.cat([results[r][0] for r in range(2)])
    input_grad = torch.cat([results[r][1] for r in range(2)])
    torch.testing.assert_close(out, expected.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(input_grad, whole.grad, rtol=1e-4, atol=1e-5)
    for r in range(2):
        grads, running_mean, running_var = results[r][2:]
        torch.testing.assert_close(
            grads, torch.stack([reference.weight.grad, reference.bias.grad]), rtol=1e-4, atol=1e-5
        )
        torch.testing.assert_close(running_mean, reference.running_mean)
        torch.testing.assert_close(running_var, reference.running_var)
