"""Named variants (``variants:`` in a config): a learned method retrained with fields of its
section changed is a method of its own: its own stages and identity, its own row under its
label, compared with its base; the ablation configs plan one training stage per variant."""

import pandas as pd
import pytest

from configs.schema import ConfigError, load_config, variant_config
from pipelines.engine import RunLayout, build_plan, environment, plan_status, resolve_data_root, run_plan

from .conftest import REPO, run_pipeline

TINY = REPO / "configs" / "tiny.yaml"
WO_P = "variants={sspfusion-wo-p: {base: sspfusion, set: {use_spf: false}, label: SSPFusion w/o P}}"
WO_F = "variants={sspfusion-wo-f: {base: sspfusion, set: {use_sfe: false}, label: SSPFusion w/o F}}"
FAST = ["segmentation.epochs=2", "segmentation.freeze_epochs=0", "segmentation.decoder_channels=32"]


def _config(*overrides):
    return load_config(TINY, [*FAST, *overrides])


def _plan(out, config):
    layout = RunLayout(out)
    stages = build_plan(
        config, layout, resolve_data_root(config, None, layout), config.methods, environment(config), False
    )
    plan_status(stages)
    return stages


def test_a_variant_is_its_base_with_its_settings():
    config = _config(WO_P)
    base, changed = variant_config(config, "sspfusion-wo-p")
    assert base == "sspfusion" and changed.fusion.use_spf is False and config.fusion.use_spf is True
    assert changed.segmentation == config.segmentation
    assert variant_config(config, "average") == ("average", config)


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        (
            "{x: {base: gtf, set: {lam: 2}}}",
            "variants.x.base: 'gtf' is not a learned method (valid: auif,",
        ),
        (
            "{x: {base: sspfusion, set: {use_spff: false}}}",
            "'use_spff' is not a field of fusion (valid: channels,",
        ),
        (
            "{x: {base: sspfusion, set: {use_spf: true}}}",
            "variants.x.set: changes nothing that changes results",
        ),
        ("{x: {base: didfuse, set: {}}}", "variants.x.set: changes nothing"),
        ("{x: {base: sspfusion, set: {use_spf: 3}}}", "variants.x.set.use_spf: expected true/false, got 3"),
        ("{Wo P: {base: sspfusion, set: {use_spf: false}}}", "variants.Wo P: a variant name is lower-case"),
        (
            "{x: {base: sspfusion, sett: {}}}",
            "unknown config key 'variants.x.sett' (valid: base, set, label)",
        ),
    ],
)
def test_bad_variants_are_named(variants, message):
    with pytest.raises(ConfigError) as error:
        _config(f"variants={variants}")
    assert message in str(error.value)


def test_a_variant_has_its_own_stages_and_identity(tmp_path):
    config = _config("inputs=[]", "methods=[sspfusion, sspfusion-wo-p]", WO_P)
    stages = {stage.key: stage for stage in _plan(tmp_path / "run", config)}
    assert {"fusion:sspfusion", "fusion:sspfusion-wo-p", "fuse:sspfusion-wo-p"} <= set(stages)
    assert stages["fuse:sspfusion-wo-p"].upstream == ("fusion:sspfusion-wo-p",)
    assert stages["segmentation:fused:sspfusion-wo-p:seed0"].upstream == ("fuse:sspfusion-wo-p",)
    full, variant = stages["fusion:sspfusion"], stages["fusion:sspfusion-wo-p"]
    assert full.identity.digest != variant.identity.digest
    assert variant.identity.parts["config"]["fusion"]["use_spf"] is False
    assert variant.folder.name == "sspfusion-wo-p" and "use_spf=False" in variant.describe


def test_a_variant_cannot_take_a_registered_name(tmp_path):
    config = _config("variants={auif: {base: auif, set: {epochs: 2}}}")
    with pytest.raises(ConfigError, match="variants.auif: 'auif' is a registered method"):
        _plan(tmp_path / "run", config)


def test_unknown_method_lists_the_variants(tmp_path):
    with pytest.raises(ConfigError, match="valid: auif, .*, sspfusion-wo-p, external:<folder>"):
        _plan(tmp_path / "run", _config("methods=[sspfusion-wo-q]", WO_P))


def test_a_variant_row_beside_its_base(tmp_path):
    """The whole chain: the variant trains, fuses and segments; Table 1 and Table 2 show it
    under its label, Table 1 beside the paper's Table 4, Table 2 with its paired difference to
    the full model. (w/o F: at this size w/o P collapses to black images, which the trainer
    refuses.)"""
    out = tmp_path / "run"
    config = _config("inputs=[]", "methods=[sspfusion, sspfusion-wo-f]", "paper_fusion_table=table4", WO_F)
    stages = _plan(out, config)
    run_plan(stages, [], environment(config), "run_all", log=lambda line: None)
    assert set(pd.read_csv(out / "report" / "table2.csv")["input"]) == {"SSPFusion", "SSPFusion w/o F"}
    beside = pd.read_csv(out / "report" / "table1_vs_paper.csv")
    assert list(beside["method"]) == ["SSPFusion", "SSPFusion w/o F"]
    assert list(beside["MI paper"]) == [5.792, 5.523]  # the paper's Table 4, MSRS
    text = (out / "report" / "table2.md").read_text()
    assert "Variants against their base method" in text
    assert "- SSPFusion w/o F - SSPFusion: " in text
    assert "Against the paper's Table 4 (MSRS)" in (out / "report" / "table1.md").read_text()


@pytest.mark.parametrize(
    ("config", "trainings"),
    [
        ("table4-mfnet-cpu.yaml", ["fusion:sspfusion", "fusion:sspfusion-wo-f", "fusion:sspfusion-wo-p"]),
        (
            "table6-mfnet-cpu.yaml",
            [
                "fusion:sspfusion",
                "fusion:sspfusion-a0.1-b0.1",
                "fusion:sspfusion-a1.0-b0.5",
                "fusion:sspfusion-a0.5-b1.0",
            ],
        ),
    ],
)
def test_ablation_configs_plan_one_training_per_variant(mfnet_root, tmp_path, config, trainings):
    result = run_pipeline(
        "run_all.py",
        "--config",
        REPO / "configs" / config,
        "--data-root",
        mfnet_root,
        "--out",
        tmp_path / "run",
        "--dry-run",
    )
    assert result.returncode == 0, result.stderr
    keys = [line.split()[1] for line in result.stdout.splitlines()[1:] if len(line.split()) > 1]
    assert [key for key in keys if key.startswith("fusion:")] == trainings, result.stdout
    assert not (tmp_path / "run").exists()


def test_a_variant_of_a_learned_baseline(tmp_path):
    config = _config(
        "inputs=[]",
        "methods=[didfuse, didfuse-l1]",
        "variants={didfuse-l1: {base: didfuse, set: {fusion_rule: l1_norm}}}",
    )
    stages = {stage.key: stage for stage in _plan(tmp_path / "run", config)}
    trained = stages["fusion:didfuse-l1"].identity.parts["config"]
    assert trained["didfuse"]["fusion_rule"] == "l1_norm"
    assert stages["fuse:didfuse-l1"].upstream == ("fusion:didfuse-l1",)
    assert stages["fusion:didfuse"].identity.digest != stages["fusion:didfuse-l1"].identity.digest
