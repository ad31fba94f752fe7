"""Methods from outside the package: the example plugin (examples/fusionseg-example) found by its
entry points and by module path, its two methods as Table 2 rows, its code in its stages'
identity, and each way a plugin can be wrong told in one line."""

import textwrap

import pandas as pd
import pytest

from configs.schema import ConfigError, load_config

from .conftest import EXAMPLE, EXAMPLE_POINTS, REPO, install_plugin, run_pipeline, run_pipeline_here

TINY = str(REPO / "configs" / "tiny.yaml")


def _run_all(out, site, *extra, timeout=600):
    args = ("--config", TINY, "--out", out, "--no-progress", *extra)
    return run_pipeline("run_all.py", *args, timeout=timeout, env={"PYTHONPATH": str(site)})


def _plan(out, site, *extra) -> dict:
    result = _run_all(out, site, "--dry-run", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return {line.split()[1]: line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}


@pytest.mark.slow
def test_example_plugin_rows_and_its_code_in_their_identity(tmp_path):
    """Installed by entry points, both methods are rows of a tiny Table 2; an edit of the
    network reruns its rows' stages and no other; the package itself is not edited."""
    site = install_plugin(tmp_path / "site", EXAMPLE_POINTS)
    out = tmp_path / "run"
    methods = ("--methods", "contrast", "tinynet", "--set", "inputs=[]", "--set", "segmentation.epochs=2")
    first = _run_all(out, site, *methods)
    assert first.returncode == 0, first.stderr[-3000:]
    table = pd.read_csv(out / "report" / "table2.csv")
    assert list(table["input"]) == ["Contrast", "TinyNet"]
    assert (out / "fusion" / "tinynet" / "model.pt").is_file()
    assert set(_plan(out, site, *methods).values()) == {"cached", "new"}  # new: the report only
    network = site / "fusionseg_example" / "network.py"
    network.write_text(network.read_text().replace("nn.LeakyReLU(0.2),", "nn.LeakyReLU(0.1),", 1))
    plan = _plan(out, site, *methods)
    rerun = sorted(name for name, status in plan.items() if status != "cached" and name != "report")
    assert rerun == ["fuse:tinynet", "fusion:tinynet", "quality:tinynet", "segmentation:fused:tinynet:seed0"]
    assert plan["fusion:tinynet"] == "stale"  # its code changed; the stages after it read its model


def test_module_path_names_a_method_and_its_section_is_checked(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    config = load_config(TINY, ["methods=[fusionseg_example.rules:contrast]", "contrast={window: 9}"])
    assert config.methods == ["contrast"] and config.contrast.window == 9
    with pytest.raises(ConfigError, match=r"unknown config key 'contrast.size' \(valid: window, sharpness\)"):
        load_config(TINY, ["methods=[fusionseg_example.rules:contrast]", "contrast={size: 9}"])
    with pytest.raises(ConfigError, match="rules.py has no method 'nothing' registered"):
        load_config(TINY, ["methods=[fusionseg_example.rules:nothing]"])
    with pytest.raises(ConfigError, match="failed to import no_such_module: ModuleNotFoundError"):
        load_config(TINY, ["methods=[no_such_module:contrast]"])


def _fails(tmp_path, site, *extra) -> str:
    args = ("--config", TINY, "--out", tmp_path / "run", "--no-progress", "--dry-run", *extra)
    result = run_pipeline_here("run_all.py", *args, paths=(site,))
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_broken_plugin_is_told_in_one_line(tmp_path):
    package = tmp_path / "src" / "broken_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "missing.py").write_text("import no_such_library\n")
    (package / "clash.py").write_text(
        "from fusion.methods import register_method\n\n"
        "@register_method('average')\ndef build():\n    return None\n"
    )
    (package / "quiet.py").write_text("X = 1\n")
    site = install_plugin(
        tmp_path / "site",
        """\
        [fusionseg.methods]
        missing = broken_plugin.missing
        clash = broken_plugin.clash
        quiet = broken_plugin.quiet
        average = broken_plugin.quiet
        """,
        package=package,
        name="broken_plugin",
    )
    line = _fails(tmp_path, site, "--methods", "missing")
    assert "plugin 'missing' (broken_plugin.missing, package broken_plugin)" in line
    assert "failed to import: ModuleNotFoundError" in line
    line = _fails(tmp_path, site, "--methods", "clash")
    assert "clash.py: method 'average' is already registered by" in line and "classic.py" in line
    line = _fails(tmp_path, site, "--methods", "quiet")
    assert "importing it registered no method 'quiet'" in line
    line = _fails(tmp_path, site, "--methods", "average")
    assert "plugin 'average' (broken_plugin.quiet" in line and "is a built-in method" in line


def test_a_builder_that_does_not_take_its_section_is_named(tmp_path):
    package = tmp_path / "src" / "odd_rule"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """\
            from dataclasses import dataclass

            from fusion.methods import register_method
            from fusion.methods.classic import build_average


            @dataclass
            class OddConfig:
                strength: float = 1.0


            @register_method("odd", config=OddConfig)
            def build(weight: float = 1.0):
                return build_average()
            """
        )
    )
    site = install_plugin(
        tmp_path / "site", "[fusionseg.methods]\nodd = odd_rule\n", package=package, name="odd_rule"
    )
    line = _fails(tmp_path, site, "--methods", "odd")
    assert "odd_rule/__init__.py: fusion method 'odd': its builder does not take ['strength']" in line


NETWORK = """\
from dataclasses import dataclass

import torch
from torch import nn

from fusion.methods import register_method


@dataclass
class BadConfig:
    epochs: int = 1
    batch_size: int = 4
    lr: float = 1e-3
    crop_size: int = 32


def loss(model, ir, vi, config):
    fused = model(ir, vi)
    value = (fused - ir).abs().mean() * {scale}
    return value, {{"total": value.detach()}}


@register_method("{name}", config=BadConfig, loss=loss)
class Bad(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.conv = nn.Conv2d(2, {outputs}, 3, padding=1)

    def forward(self, ir, vi):
        return torch.sigmoid(self.conv(torch.cat([ir, vi], 1))) * {range_}
"""


@pytest.mark.parametrize(
    ("scale", "outputs", "range_", "message"),
    [
        ("1", "2", "1", "infrared and visible into (4, 2, "),
        ("1", "1", "255", "]; it must be in [0, 1] as its inputs are"),
        ("float('nan')", "1", "1", "its loss is not finite at the first step (loss=nan, total=nan)"),
    ],
)
def test_a_bad_network_stops_before_training(
    synthetic_root, tmp_path, monkeypatch, scale, outputs, range_, message
):
    """Before any step (in this process; the same MethodError is one line and exit 2 from a
    script, as the broken plugins above show)."""
    import fusion.methods
    from fusion.methods import MethodError
    from fusion.training import train

    monkeypatch.setattr(fusion.methods, "_REGISTRY", dict(fusion.methods._REGISTRY))  # registered here only
    name = f"bad{len(outputs + range_ + scale)}"
    (tmp_path / f"{name}_net.py").write_text(
        NETWORK.format(name=name, scale=scale, outputs=outputs, range_=range_)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = load_config(TINY, [f"methods=[{name}_net:{name}]"])
    with pytest.raises(MethodError) as error:
        train(name, config, synthetic_root, tmp_path / "run", progress=False)
    assert message in str(error.value) and f"{name}_net.py" in str(error.value), str(error.value)
    assert not (tmp_path / "run" / "model.pt").exists()
