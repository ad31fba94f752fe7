import pytest

from configs.schema import ConfigError, load_config
from pipelines.engine.identity import digest, result_fields

from .conftest import REPO


@pytest.mark.parametrize("name", ["quick.yaml", "paper.yaml"])
def test_shipped_configs_load(name):
    config = load_config(REPO / "configs" / name)
    assert config.name == name.removesuffix(".yaml")
    assert config.segmentation.freeze_epochs <= config.segmentation.epochs


def test_paper_config_holds_the_papers_numbers():
    seg = load_config(REPO / "configs" / "paper.yaml").segmentation
    fus = load_config(REPO / "configs" / "paper.yaml").fusion
    assert (seg.epochs, seg.freeze_epochs, seg.freeze_batch_size, seg.batch_size) == (340, 100, 8, 4)
    assert seg.lr == pytest.approx(7e-3)
    assert (fus.structure_epochs, fus.fusion_epochs, fus.crop_size) == (50, 300, 256)
    assert fus.lr == pytest.approx(2e-4) and fus.betas == [0.9, 0.999]
    assert (len(fus.channels), fus.alpha, fus.beta, fus.charbonnier_eps) == (3, 1.0, 1.0, 1e-3)


def test_misspelled_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("segmentation:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'segmentation.epoch'"):
        load_config(path)


def test_wrong_type_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("seed: abc\n")
    with pytest.raises(ConfigError, match="seed: expected an integer"):
        load_config(path)


def test_overrides_and_hash():
    base = load_config(REPO / "configs" / "quick.yaml")
    changed = load_config(REPO / "configs" / "quick.yaml", ["segmentation.epochs=3", "methods=[average]"])
    assert changed.segmentation.epochs == 3 and changed.methods == ["average"]
    assert digest(result_fields(base.segmentation)) != digest(result_fields(changed.segmentation))
    assert digest(result_fields(base.fusion)) == digest(result_fields(changed.fusion))
    with pytest.raises(ConfigError, match="segmentation.nope"):
        load_config(None, ["segmentation.nope=1"])


def test_yaml_is_data_not_code(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
