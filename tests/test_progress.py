"""Progress display: bars on a terminal, one line per loop in a log, for both trainers."""

from __future__ import annotations

import io

from tqdm import tqdm

from configs.schema import load_config
from fusion.training import train
from runtime.progress import LoopLine, is_terminal, progress_bar
from segmentation.train import train_segmentation
from tests.conftest import REPO


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_loop_line_prints_one_line_with_the_postfix_and_facts():
    out = io.StringIO()
    loop = LoopLine(range(5), "visible seed 0 epoch 2/3", out=out, lr=0.007)
    seen = []
    for item in loop:
        seen.append(item)
        loop.set_postfix(loss=f"{1 / (item + 1):.3f}", img_s="38.2")
    assert seen == [0, 1, 2, 3, 4] and len(loop) == 5
    text = out.getvalue()
    assert "\r" not in text and text.count("\n") == 1
    assert text.startswith("visible seed 0 epoch 2/3: loss=0.200 img_s=38.2 lr=0.007 elapsed=")
    assert text.rstrip().endswith("s")


def test_loop_line_without_postfix_counts_items():
    out = io.StringIO()
    list(LoopLine(["a", "b", "c"], "fuse average test", out=out))
    assert out.getvalue().startswith("fuse average test: items=3 elapsed=")


def test_terminal_gets_a_bar_a_log_gets_a_line_disabled_gets_the_iterable(monkeypatch):
    items = [1, 2]
    assert progress_bar(items, "x", enabled=False) is items
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not is_terminal()
    assert isinstance(progress_bar(items, "x"), LoopLine)
    monkeypatch.setattr("sys.stderr", _Terminal())
    assert is_terminal()
    bar = progress_bar(items, "x")
    assert isinstance(bar, tqdm) and list(bar) == items


def test_trainers_write_one_line_per_epoch_to_a_log(synthetic_root, tmp_path, capsys):
    config = load_config(REPO / "configs" / "tiny.yaml")
    config.runtime.threads = 1
    config.segmentation.epochs = 2
    train_segmentation(config, synthetic_root, "visible", tmp_path / "seg", seed=0, progress=True)
    train("sspfusion", config, synthetic_root, tmp_path / "fusion", progress=True)
    captured = capsys.readouterr()
    assert "\r" not in captured.out + captured.err
    lines = captured.out.splitlines()
    segmentation = [line for line in lines if line.startswith("visible seed 0 epoch ")]
    assert [line.split(":")[0] for line in segmentation] == [
        "visible seed 0 epoch 1/2 (encoder frozen)",
        "visible seed 0 epoch 2/2",
    ]
    fusion = [line for line in lines if line.startswith("SSPFusion ")]
    assert [line.split(":")[0] for line in fusion] == [
        "SSPFusion structure epoch 1/3",
        "SSPFusion fusion epoch 2/3",
        "SSPFusion fusion epoch 3/3",
    ]
    for line in segmentation + fusion:
        assert " lr=" in line and " img_s=" in line and " elapsed=" in line
    assert all(" loss=" in line for line in segmentation)
    assert all(" total=" in line for line in fusion)
