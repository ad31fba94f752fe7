"""DeepLabV3+ from segmentation-models-pytorch, and the frozen-encoder phase of the recipe.

Every input enters with three channels: infrared (one channel) is replicated to RGB by the data
layer. That keeps one architecture for every Table 2 row (the only difference between rows is
the images), lets ImageNet weights apply unchanged, and matches the DeepLabV3+ code the authors
most likely ran (bubbliiiing/deeplabv3-plus-pytorch), which converts every image to RGB.
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch

from configs.schema import ConfigError
from msrs.classes import NUM_CLASSES
from segmentation.pretrained import (
    hub_weights,
    is_packaged,
    load_hub_weights,
    load_packaged_weights,
)


def valid_encoders() -> list[str]:
    return sorted(smp.encoders.get_encoder_names())


def check_encoder(encoder: str) -> None:
    """An unknown encoder is an error listing the valid names."""
    names = valid_encoders()
    if encoder not in names:
        raise ConfigError(f"segmentation.encoder: unknown encoder '{encoder}' (valid: {', '.join(names)})")


def build_model(
    encoder: str,
    encoder_weights: str | None = None,
    classes: int = NUM_CLASSES,
    decoder_channels: int = 256,
    output_stride: int = 16,
    atrous_rates: tuple[int, ...] = (6, 12, 18),
) -> smp.DeepLabV3Plus:
    """smp.DeepLabV3Plus with 3 input channels. ``encoder_weights="imagenet"`` reads smp's
    ImageNet weights from the Hugging Face cache, never online (segmentation.pretrained:
    ``python pipelines/fetch_weights.py`` fills the cache where there is internet).
    ``decoder_channels`` is the width of the ASPP and decoder: 256 in DeepLabV3+ and the paper's
    recipe; the CPU default narrows it to 128, which trains about 1.4x faster at 96x128 (the
    decoder is half the model's FLOPs there).

    DECISION: ``atrous_rates`` default to (6, 12, 18), DeepLabV3+'s rates at output stride 16
    (Chen et al. 2018) and the anchor code's; smp's own default (12, 24, 36) is the stride-8
    choice. At 480x640 the stride-16 feature map is 30x40, where a rate-36 branch reads mostly
    padding."""
    check_encoder(encoder)
    packaged = is_packaged(encoder_weights)  # weights from an installed package (offline)
    hub = hub_weights(encoder, encoder_weights)  # smp's download, read from the cache
    model = smp.DeepLabV3Plus(
        encoder_name=encoder,
        encoder_weights=None if packaged or hub else encoder_weights,
        in_channels=3,
        classes=classes,
        decoder_channels=decoder_channels,
        encoder_output_stride=output_stride,
        decoder_atrous_rates=tuple(atrous_rates),
    )
    if packaged:
        load_packaged_weights(model.encoder, encoder, encoder_weights)
    elif hub:
        load_hub_weights(model.encoder, encoder, encoder_weights)
    return model


def model_from_config(seg, encoder_weights: str | None = None) -> smp.DeepLabV3Plus:
    """The network a ``SegmentationConfig`` describes; ``encoder_weights`` defaults to none (the
    caller passes ``seg.encoder_weights`` where pretrained weights are wanted)."""
    return build_model(
        seg.encoder,
        encoder_weights,
        decoder_channels=seg.decoder_channels,
        output_stride=seg.output_stride,
        atrous_rates=tuple(seg.atrous_rates),
    )


def aspp_rates(model: smp.DeepLabV3Plus) -> list[int]:
    """The dilations of the ASPP's three atrous branches, read from the built module."""
    branches = model.decoder.aspp[0].convs[1:4]
    return [
        next(m for m in branch.modules() if isinstance(m, torch.nn.Conv2d)).dilation[0] for branch in branches
    ]


def set_encoder_frozen(model: torch.nn.Module, frozen: bool) -> None:
    """Freeze or release the encoder's parameters (requires_grad)."""
    for parameter in model.encoder.parameters():
        parameter.requires_grad_(not frozen)


def set_train_mode(model: torch.nn.Module, frozen: bool, frozen_bn_updates: bool = False) -> None:
    """``model.train()``, except that a frozen encoder stays in eval mode so that its BatchNorm
    running statistics do not move (a real freeze). ``frozen_bn_updates=True`` reproduces the
    anchor code, whose "frozen" backbone keeps updating them."""
    model.train()
    if frozen and not frozen_bn_updates:
        model.encoder.eval()


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
