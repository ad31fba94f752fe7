"""One guard for every learned fusion method: training stops with :class:`FusionCollapseError`,
naming the method and the epoch, when the images its network makes are saturated, black or flat,
instead of writing a model that fuses to useless images.

After every epoch the training loop (fusion/training.py) runs the network in eval
mode on a few fixed probe pairs (:func:`probe_pairs`) and hands its images to
:meth:`CollapseGuard.check`. The images are those of the phase being trained: the fused images, or
the reconstructions of an auto-encoder phase whose fusion part is not trained yet.

DECISION (ours): an image set is

- *saturated* when more than half of its pixels are at 254/255 or above,
- *black* when more than half are at 1/255 or below,
- *flat* when nothing in any image follows its sources: the part of each image that its pair's
  sources explain (its least-squares fit ``a + b I + c V``, :func:`source_following_std`) has a
  standard deviation under 1e-3 (on [0, 1]). That takes in a constant image and also a network's
  fixed faint pattern whatever the input (ITFuse trained too briefly: std 1.1/255, correlation
  with either source under 0.02), while a dim but real fusion (a one-epoch DIDFuse of std
  0.01) passes; a bound on the plain std relative to the sources stopped the latter too,

each only where the probe sources are not so themselves (a night pair may be mostly black in
its visible image, never in both). A fault stops training once it has lasted ``PATIENCE`` epochs
in a row within a phase, or when it is there after the last epoch (the images of the model that
would be written): a freshly started network or phase may begin at the output's floor (a tanh
or clamp below 0) and leave it within a few epochs, which a dead output never does. A method
whose network starts so for longer names its ``warmup_steps``: before that many optimiser steps
of a phase only the last epoch's images stop it (ITFuse, :mod:`fusion.methods.itfuse.recipe`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from configs.schema import ToolError

FLAT_STD = 1e-3  # an image whose source-following part has a smaller std (on [0, 1]) is flat
SATURATED = 254 / 255
BLACK = 1 / 255
MAJORITY = 0.5  # share of pixels that makes a set saturated or black
PATIENCE = 5  # epochs in a row (within a phase) a fault may last before training stops


class FusionCollapseError(ToolError, ValueError):
    """A learned method's images went saturated, black or flat in training: no model is written."""


def probe_pairs(irs: list[np.ndarray], vis: list[np.ndarray], size: int = 128, count: int = 4) -> tuple:
    """(infrared, visible) (count, 1, s, s) tensors in [0, 1]: the central s x s square of the
    first ``count`` training pairs, s = ``size`` (ours: 128) or the smallest side among them if
    smaller."""
    pairs = list(zip(irs, vis, strict=True))[:count]
    side = min(size, *(min(ir.shape) for ir, _ in pairs))

    def centre(image: np.ndarray) -> np.ndarray:
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        return image[top : top + side, left : left + side]

    stack = lambda images: torch.from_numpy(np.stack(images)[:, None].astype(np.float32) / 255)  # noqa: E731
    return stack([centre(ir) for ir, _ in pairs]), stack([centre(vi) for _, vi in pairs])


def source_following_std(images: torch.Tensor, sources: list[torch.Tensor]) -> torch.Tensor:
    """(M,) standard deviation of the part of each image of an (M, 1, H, W) set that its pair's
    sources explain: its least-squares fit on a constant and the sources (each (N, 1, H, W);
    image i belongs to pair i mod N, so an auto-encoder's reconstructions of [I; V] work too)."""
    fused = images.detach().flatten(1).double().cpu()
    pair = torch.arange(len(fused)) % len(sources[0])
    columns = [torch.ones_like(fused), *(s.detach().flatten(1).double().cpu()[pair] for s in sources)]
    design = torch.stack(columns, dim=-1)
    fit = design @ torch.linalg.lstsq(design, fused[..., None], driver="gelsd").solution
    return fit[..., 0].std(dim=1)


def fault(images: torch.Tensor, sources: list[torch.Tensor]) -> str | None:
    """What is wrong with an (N, 1, H, W) image set in [0, 1] (``saturated``, ``black``,
    ``flat``) that is not wrong with every source set, or None."""
    images = images.detach().float().clamp(0, 1)
    sources = [s.detach().float().clamp(0, 1) for s in sources]

    def flags(x: torch.Tensor, spread: torch.Tensor) -> dict[str, bool]:
        return {
            "saturated": float((x >= SATURATED).float().mean()) > MAJORITY,
            "black": float((x <= BLACK).float().mean()) > MAJORITY,
            "flat": bool((spread < FLAT_STD).all()),
        }

    found = flags(images, source_following_std(images, sources))
    in_sources = [flags(s, s.flatten(1).std(dim=1)) for s in sources]
    for name, present in found.items():
        if present and not all(source[name] for source in in_sources):
            return name
    return None


class CollapseGuard:
    """The guard of one training run: ``check`` after every epoch with the phase's images."""

    def __init__(
        self,
        title: str,
        sources: list[torch.Tensor],
        keep_evidence: Callable[[], None] | None = None,
        patience: int | None = None,
        warmup_steps: int = 0,
    ):
        """``title`` names the method in the error; ``sources`` are the probe pairs' source
        images; ``keep_evidence`` runs before the error (the trainers write their history);
        ``warmup_steps``: optimiser steps of a phase before a lasting fault may stop it early."""
        self.title, self.sources, self.keep_evidence = title, sources, keep_evidence
        self.patience = PATIENCE if patience is None else patience
        self.warmup_steps = warmup_steps
        self.phase, self.streak = None, 0

    def check(
        self, epoch: int, phase: str, what: str, images: torch.Tensor, last: bool, steps: int | None = None
    ) -> None:
        """Raise FusionCollapseError when ``images`` (the phase's ``what``: "fused images" or
        "reconstructions") after ``epoch`` (counted from 1) have been faulty for ``patience``
        epochs of ``phase`` in a row (and the phase has run ``steps`` >= ``warmup_steps``
        optimiser steps), or are faulty after the ``last`` epoch of training."""
        if phase != self.phase:
            self.phase, self.streak = phase, 0
        problem = fault(images, self.sources)
        self.streak = self.streak + 1 if problem else 0
        warm = steps is None or steps >= self.warmup_steps
        if problem is None or not (last or (self.streak >= self.patience and warm)):
            return
        if self.keep_evidence is not None:
            self.keep_evidence()
        images = images.detach().float().clamp(0, 1)
        raise FusionCollapseError(
            f"{self.title} collapsed in epoch {epoch} ({phase} phase): its {what} of the probe pairs "
            f"are {problem} (mean brightness {float(images.mean()) * 255:.1f}/255, "
            f"{float((images >= SATURATED).float().mean()):.0%} of pixels saturated, "
            f"{float((images <= BLACK).float().mean()):.0%} black, largest std "
            f"{float(images.flatten(1).std(dim=1).max()):.4f}, of which follows the sources "
            f"{float(source_following_std(images, self.sources).max()):.4f}, {self.streak} epoch(s) so); "
            "stopping without writing a model. Try a lower learning rate or more epochs"
        )
