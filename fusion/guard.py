"""One guard for every learned fusion method: training stops with :class:`FusionCollapseError`,
naming the method and the epoch, when the images its network makes are saturated, black or flat,
instead of writing a model that fuses to useless images.

After every epoch the trainer (SSPFusion's and the baselines' loop) runs the network in eval
mode on a few fixed probe pairs (:func:`probe_pairs`) and hands its images to
:meth:`CollapseGuard.check`. The images are those of the phase being trained: the fused images, or
the reconstructions of an auto-encoder phase whose fusion part is not trained yet.

DECISION (ours): an image set is

- *saturated* when more than half of its pixels are at 254/255 or above,
- *black* when more than half are at 1/255 or below,
- *flat* when every image's standard deviation is under 1e-3 (on [0, 1]),

each only where the probe sources are not so themselves (a night pair may be mostly black in
its visible image, never in both). A fault stops training once it has lasted ``PATIENCE`` epochs
in a row within a phase, or when it is there after the last epoch (the images of the model that
would be written): a freshly started network or phase may begin at the output's floor (a tanh
or clamp below 0) and leave it within a few epochs, which a dead output never does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

FLAT_STD = 1e-3  # an image with a smaller standard deviation (on [0, 1]) is flat
SATURATED = 254 / 255
BLACK = 1 / 255
MAJORITY = 0.5  # share of pixels that makes a set saturated or black
PATIENCE = 5  # epochs in a row (within a phase) a fault may last before training stops


class FusionCollapseError(ValueError):
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


def fault(images: torch.Tensor, sources: list[torch.Tensor]) -> str | None:
    """What is wrong with an (N, 1, H, W) image set in [0, 1] (``saturated``, ``black``,
    ``flat``) that is not wrong with every source set, or None."""
    images = images.detach().float().clamp(0, 1)

    def flags(x: torch.Tensor) -> dict[str, bool]:
        return {
            "saturated": float((x >= SATURATED).float().mean()) > MAJORITY,
            "black": float((x <= BLACK).float().mean()) > MAJORITY,
            "flat": bool((x.flatten(1).std(dim=1) < FLAT_STD).all()),
        }

    found, in_sources = flags(images), [flags(s.detach().float().clamp(0, 1)) for s in sources]
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
    ):
        """``title`` names the method in the error; ``sources`` are the probe pairs' source
        images; ``keep_evidence`` runs before the error (the trainers write their history)."""
        self.title, self.sources, self.keep_evidence = title, sources, keep_evidence
        self.patience = PATIENCE if patience is None else patience
        self.phase, self.streak = None, 0

    def check(self, epoch: int, phase: str, what: str, images: torch.Tensor, last: bool) -> None:
        """Raise FusionCollapseError when ``images`` (the phase's ``what``: "fused images" or
        "reconstructions") after ``epoch`` (counted from 1) have been faulty for ``patience``
        epochs of ``phase`` in a row, or are faulty after the ``last`` epoch of training."""
        if phase != self.phase:
            self.phase, self.streak = phase, 0
        problem = fault(images, self.sources)
        self.streak = self.streak + 1 if problem else 0
        if problem is None or not (last or self.streak >= self.patience):
            return
        if self.keep_evidence is not None:
            self.keep_evidence()
        images = images.detach().float().clamp(0, 1)
        raise FusionCollapseError(
            f"{self.title} collapsed in epoch {epoch} ({phase} phase): its {what} of the probe pairs "
            f"are {problem} (mean brightness {float(images.mean()) * 255:.1f}/255, "
            f"{float((images >= SATURATED).float().mean()):.0%} of pixels saturated, "
            f"{float((images <= BLACK).float().mean()):.0%} black, largest std "
            f"{float(images.flatten(1).std(dim=1).max()):.4f}, {self.streak} epoch(s) so); "
            "stopping without writing a model. Try a lower learning rate or more epochs"
        )
