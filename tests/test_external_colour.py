"""Fairness between Table 2 rows: grey external images get the visible Cb/Cr as built-in rows do."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from configs.schema import ConfigError, load_config
from fusion.colour import luminance
from fusion.methods import build_method
from fusion.methods.base import fuse_luminance
from msrs.layout import list_pairs, read_ir, read_vi
from pipelines.engine import method_options
from segmentation.rows import Row
from tests.conftest import REPO


@pytest.fixture(scope="module")
def real_pair(photo_pairs):
    return list_pairs(photo_pairs)[0]  # astronaut, a photo with real colour


def test_recoloured_grey_external_equals_the_builtin_path(real_pair, tmp_path):
    fused_y = luminance(build_method("average").fuse_pair(real_pair, "all"))
    Image.fromarray(fused_y, "L").save(tmp_path / f"{real_pair.name}.png")
    external = build_method(f"external:{tmp_path}").fuse_pair(real_pair, "all")
    # the built-in path (fusion/methods/base.py) on the same luminance
    builtin = fuse_luminance(lambda ir_y, vi_y: fused_y / 255.0, read_ir(real_pair.ir), read_vi(real_pair.vi))
    np.testing.assert_array_equal(external, builtin)
    assert not np.array_equal(external[..., 0], external[..., 1])  # it has colour

    # grey saved as RGB (three equal channels) is grey too
    Image.fromarray(np.repeat(fused_y[..., None], 3, axis=2)).save(tmp_path / f"{real_pair.name}.png")
    np.testing.assert_array_equal(build_method(f"external:{tmp_path}").fuse_pair(real_pair, "all"), builtin)


def test_keep_leaves_grey_and_colour_files_are_untouched(real_pair, tmp_path):
    fused_y = luminance(read_vi(real_pair.vi))
    Image.fromarray(fused_y, "L").save(tmp_path / f"{real_pair.name}.png")
    kept = build_method(f"external:{tmp_path}", grey="keep")
    out = kept.fuse_pair(real_pair, "all")
    assert all(np.array_equal(out[..., c], fused_y) for c in range(3))
    assert kept.fingerprint() != build_method(f"external:{tmp_path}").fingerprint()

    colour = read_vi(real_pair.vi)[::-1].copy()  # any RGB image with colour
    Image.fromarray(colour).save(tmp_path / f"{real_pair.name}.png")
    np.testing.assert_array_equal(build_method(f"external:{tmp_path}").fuse_pair(real_pair, "all"), colour)
    with pytest.raises(ValueError, match="grey must be one of"):
        build_method(f"external:{tmp_path}", grey="sepia")


def test_the_experiment_passes_its_grey_mode_to_external_methods(tmp_path):
    config = load_config(REPO / "configs" / "tiny.yaml")
    assert config.external_grey == "recolour"
    assert method_options(config, f"external:{tmp_path}") == {"grey": "recolour"}
    assert method_options(config, "average") == {}
    keep = load_config(REPO / "configs" / "tiny.yaml", ["external_grey=keep"])
    assert method_options(keep, f"external:{tmp_path}") == {"grey": "keep"}
    with pytest.raises(ConfigError, match="external_grey"):
        load_config(REPO / "configs" / "tiny.yaml", ["external_grey=sepia"])


def test_table2_shows_each_rows_colour_mode():
    from segmentation.report import table2, to_markdown

    def run(name, colour):
        iou = dict.fromkeys(("background", "car"), 50.0)
        return {
            "row": Row.parse(name),
            "seed": 0,
            "metrics": {"per_class_iou": iou, "miou": 50.0, "colour": colour},
        }

    table = table2(
        [run("infrared", "grey"), run("visible", "colour"), run("fused:external:/x/DDFM", "colour")]
    )
    assert list(table["colour"]) == ["grey", "colour", "colour"]
    lines = to_markdown(table).splitlines()
    assert lines[0].endswith("| Colour |") and lines[2].endswith("| grey |")
