"""The one typed configuration of an experiment.

A YAML file maps onto :class:`ExperimentConfig`; every key must be a field (a misspelled key is
an error that names it and lists the valid ones), every value must have the field's type.
Any field can be overridden from the command line as ``section.field=value`` (the value is
parsed as YAML, so ``segmentation.epochs=3`` or ``methods=[average,gtf]`` work).

DECISION (ours): files and overrides are read with :func:`load_yaml`, PyYAML's safe loader with
the YAML 1.2 core schema's numbers and booleans: ``2e-2`` and ``5E-4`` are numbers (YAML 1.1, which
PyYAML follows, reads a float without a dot as a string) and only ``true``/``false`` are booleans,
so the ``on``/``off`` values of the runtime switches stay words (YAML 1.1 reads them, and
``yes``/``no``, as booleans).

The numbers of the paper's recipe live in ``configs/paper.yaml`` with comments citing the
paper; the defaults below are the paper's values where the paper gives one.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml


class ToolError(Exception):
    """An error the tool reports in one line (bad input, a setting, a run that cannot go on); the
    message names the file or key and the problem. Any other exception is a bug of the tool and
    keeps its traceback (pipelines/_common.run_main)."""


class ConfigError(ToolError, ValueError):
    """A configuration file or override is wrong; the message names the key and the problem."""


@dataclass
class SyntheticConfig:
    """Built-in synthetic MSRS-like scenes (msrs/synthetic.py), generated when data.root is null."""

    train: int = 200
    test: int = 60
    height: int = 96
    width: int = 128
    seed: int = 0
    night_fraction: float = 0.5


@dataclass
class DataConfig:
    """Where the (infrared, visible, label) triplets come from."""

    root: str | None = None  # a data root (MSRS, MFNet); null = the built-in synthetic scenes
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    synthetic_allowed: bool = True  # false: without a root, refuse instead of using synthetic scenes


@dataclass
class FusionConfig:
    """SSPFusion: architecture, loss weights and the two-stage training recipe (paper 3, 4.1)."""

    channels: list[int] = field(default_factory=lambda: [64, 128, 256])  # one width per level, N = 3
    rcab_per_level: int = 2  # RCAB blocks after each encoder level ("Fusion Details")
    reduction: int = 16  # channel-attention reduction of RCAB (Zhang et al., 2018)
    use_sfe: bool = True  # ablation "w/o F" (Table 4): drops L_str and L_rec, nothing else
    use_spf: bool = True  # ablation "w/o P" (Table 4): no unique-structure enhancement
    shared_encoder: bool = False  # one SFE for both modalities (eq. 1; model.SSPFusion)
    structure_target: str = "gradient"  # eq. 2 reading: gradient | features (model.structure_target)
    frozen_targets: bool = False  # phase 2 targets from a frozen copy of the phase-1 SFE
    output: str = "clamp"  # decoder output: clamp (straight-through) | sigmoid (model.Decoder)
    alpha: float = 1.0  # weight of L_str, eq. 9
    beta: float = 1.0  # weight of L_rec, eq. 9
    charbonnier_eps: float = 1e-3  # epsilon of eq. 10
    structure_epochs: int = 50  # phase 1: learn the structure maps
    fusion_epochs: int = 300  # phase 2: learn the fusion
    batch_size: int = 8
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    crop_size: int = 256  # random square crops for training
    max_pairs: int | None = None  # use only the first N training pairs (null = all)


@dataclass
class SegmentationConfig:
    """DeepLabV3+ (smp) and the paper's two-phase recipe (section 4.1, segmentation paragraph)."""

    encoder: str = "mobilenet_v2"
    encoder_weights: str | None = None  # "imagenet": smp download; or a packaged source (offline)
    freeze_random_encoder: bool = False  # allow a frozen phase without encoder_weights (learns nothing)
    decoder_channels: int = 256  # DeepLabV3+ ASPP/decoder width (smp's and the paper's 256)
    output_stride: int = 16  # encoder output stride (DeepLabV3+: 16; 8 is finer and slower)
    atrous_rates: list[int] = field(default_factory=lambda: [6, 12, 18])  # ASPP rates at stride 16
    epochs: int = 340  # total, frozen phase included
    freeze_epochs: int = 100  # first epochs with the encoder frozen
    freeze_batch_size: int = 8
    batch_size: int = 4  # after unfreezing
    lr: float = 7e-3
    min_lr_ratio: float = 0.01  # cosine decays to lr * min_lr_ratio
    momentum: float = 0.9
    nesterov: bool = False  # anchor code: true
    weight_decay: float = 0.0  # anchor code: 1e-4
    lr_batch_scaling: bool = False  # anchor code: lr * batch / 16 per phase (within its SGD limits)
    warmup_epochs: int = 0  # anchor code: 3 (quadratic warm-up)
    hold_epochs: int = 0  # anchor code: 15 (the last epochs stay at the minimum lr)
    keep_optimizer: bool = False  # anchor code: true (one SGD for the run; momentum survives unfreeze)
    frozen_bn_updates: bool = False  # anchor code: true (frozen encoder's BN stats keep moving)
    val_fraction: float = 0.0  # training images held out for validation (0 = none)
    val_seed: int = 0  # the held-out images: the same for every input and training seed
    reported_model: str = "last"  # last | lowest_val_loss (needs val_fraction > 0)
    dice_weight: float = 1.0
    ce_weight: float = 1.0
    image_scale: float = 1.0  # images resized by this before training and prediction; scored at label size
    crop: list[int] | None = None  # [h, w] of training crops (after image_scale); null = the image size
    rare_crop_fraction: float = 0.0  # share of training crops centred on a rare-class pixel (data.py)
    scale_range: list[float] = field(default_factory=lambda: [0.5, 2.0])
    num_workers: int = -1  # -1: chosen from the core count
    eval_every: int = 1  # epochs between test-split mIoU (test_miou) in history.csv (0 = only at the end)
    prediction_images: int = 4


@dataclass
class VariantConfig:
    """A named method: a learned method (``base``) trained with fields of its config section
    changed (``set``), e.g. ``{base: sspfusion, set: {use_spf: false}, label: SSPFusion w/o P}``
    (Table 4's "w/o P"). ``label`` is its row name in Tables 1 and 2 (default: the name)."""

    base: str = ""
    set: dict = field(default_factory=dict)
    label: str = ""


@dataclass
class RuntimeConfig:
    """Where and how tensors run; CUDA-only speed-ups default on for CUDA, off on CPU."""

    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch CPU threads; 0 = the CPUs this process may use, shared among its node's ranks
    amp: str = "auto"  # auto | off | bf16 | fp16
    channels_last: str = "auto"  # auto | on | off
    cudnn_benchmark: str = "auto"  # auto (on for CUDA) | on | off; on trades bitwise repeatability
    deterministic: str = (
        "auto"  # auto (on for the CPU, off for CUDA) | on | off (runtime.device.deterministic)
    )


@dataclass
class SlurmResources:
    """What one Slurm job of a stage kind asks for (``run_all --launcher slurm``)."""

    partition: str | None = None  # None: the cluster's default partition
    gpus: int = 0  # GPUs on the job's node (--gpus-per-node)
    cpus: int = 2  # --cpus-per-task; also the job's torch threads and loader workers' share
    mem_gb: float = 8.0  # --mem
    minutes: int = 60  # --time; a job that runs out is requeued from its checkpoint
    sbatch: dict[str, str] = field(default_factory=dict)  # other sbatch options, e.g. {account: me, qos: low}


@dataclass
class SlurmConfig:
    """``run_all --launcher slurm``: each pending stage a job, submitted with ``afterok``
    dependencies on the jobs of the stages it reads; the resources of each stage kind. None of
    this enters a stage identity: where a stage ran does not change its result."""

    fusion: SlurmResources = field(default_factory=SlurmResources)  # fields not given: the defaults above
    fuse: SlurmResources = field(default_factory=SlurmResources)  # fusing with a learned method
    fuse_rule: SlurmResources = field(default_factory=SlurmResources)  # a fusion rule or a folder: CPUs
    quality: SlurmResources = field(default_factory=SlurmResources)
    segmentation: SlurmResources = field(default_factory=SlurmResources)
    report: SlurmResources = field(default_factory=SlurmResources)
    retries: int = 2  # times a failed job is resubmitted (it resumes from its checkpoint)
    timeouts: int = 3  # times a job that ran out of time or was preempted is requeued
    array_parallelism: int = 64  # array tasks of one segmentation array running at once


@dataclass
class ExperimentConfig:
    """Everything one experiment needs; one YAML file."""

    name: str = "experiment"
    seed: int = 0
    seeds: int = 1  # segmentation trainings per input (seed, seed+1, ...)
    inputs: list[str] = field(default_factory=lambda: ["infrared", "visible"])
    methods: list[str] = field(default_factory=lambda: ["sspfusion"])
    metrics_convention: str = "python"  # fusion metrics: python (CDDFuse) | matlab
    external_grey: str = "recolour"  # grey external: images: recolour (visible Cb/Cr) | keep
    paper_fusion_table: str | None = None  # put the paper's table1 | table4 | table6 beside Table 1
    data: DataConfig = field(default_factory=DataConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    variants: dict[str, VariantConfig] = field(default_factory=dict)  # name -> VariantConfig
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    # the other methods' sections (didfuse:, a plugin's name: ...), typed by the method registry
    # (fusion.methods); in YAML each is a top-level key. Read one as ``config.<section>``.
    method_sections: dict = field(default_factory=dict)

    def __getattr__(self, name: str):
        """``config.didfuse``: a registered method's section (its defaults when the config did
        not give it, kept so that changes to it stay)."""
        sections = self.__dict__.get("method_sections")
        if sections is None or name.startswith("_"):
            raise AttributeError(name)
        if name not in sections:
            section_type = method_section_types().get(name)
            if section_type is None:
                raise AttributeError(f"'ExperimentConfig' has no section '{name}'")
            sections[name] = section_type()
        return sections[name]


class _CoreSchemaLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 core-schema booleans and floats (module docstring)."""


_CoreSchemaLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str):
    """YAML text as plain data, safely (:class:`yaml.SafeLoader`), with the core schema's
    numbers and booleans (module docstring)."""
    return yaml.load(text, Loader=_CoreSchemaLoader)  # a SafeLoader subclass: plain data only


def _check_type(value, annotation, key: str):
    """Return ``value`` converted to ``annotation`` or raise a ConfigError naming ``key``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{key}: unexpected value {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_type,) = typing.get_args(annotation)
        return [_check_type(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        key_type, item_type = typing.get_args(annotation)
        return {
            _check_type(k, key_type, f"{key} (a name)"): _check_type(v, item_type, f"{key}.{k}")
            for k, v in value.items()
        }
    if annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return value
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {annotation.__name__} fields")
        return _from_dict(annotation, value, key)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if annotation is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if not isinstance(value, annotation):
        raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")
    return value


def _from_dict(cls, raw: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in hints:
            raise ConfigError(f"unknown config key '{full}' (valid: {', '.join(names)})")
        kwargs[key] = _check_type(value, hints[key], full)
    return cls(**kwargs)


def section_from_dict(cls, raw: dict, name: str):
    """One config section (a dataclass ``cls``) from a mapping, keys checked as in a YAML file."""
    return _from_dict(cls, raw, name)


class MethodRegistry(typing.Protocol):
    """What the config needs of the fusion-method registry (fusion.methods, which hands itself
    over with :func:`use_method_registry` when imported: configs/ imports nothing above it)."""

    def section_types(self) -> dict[str, type]: ...

    def section_of(self, method: str) -> str: ...

    def resolve_method(self, name: str) -> str: ...

    def trainable_methods(self) -> list[str]: ...

    def is_trainable(self, name: str) -> bool: ...


_method_registry: MethodRegistry | None = None


def use_method_registry(registry: MethodRegistry) -> None:
    """Hand the config the method registry (fusion.methods does, when imported)."""
    global _method_registry
    _method_registry = registry


def method_registry() -> MethodRegistry:
    if _method_registry is None:
        raise ConfigError(
            "method sections and method names need the method registry: import fusion.methods "
            "before reading a config (the pipelines do)"
        )
    return _method_registry


def method_section_types() -> dict[str, type]:
    """Config section name -> settings dataclass of every registered method (fusion.methods)
    whose section is not a field of :class:`ExperimentConfig`."""
    fields = {f.name for f in dataclasses.fields(ExperimentConfig)}
    return {name: kind for name, kind in method_registry().section_types().items() if name not in fields}


def method_section(config: ExperimentConfig, method: str):
    """The config section of the registered method ``method`` (``fusion`` for SSPFusion)."""
    return getattr(config, method_registry().section_of(method))


def config_from_dict(raw: dict) -> ExperimentConfig:
    """Build a validated ExperimentConfig from a plain mapping (as read from YAML): the
    methods named as ``module:name`` resolved to what that module registered, then every
    top-level key that is no field of ExperimentConfig read as a registered method's section."""
    raw = dict(raw or {})
    fields = [f.name for f in dataclasses.fields(ExperimentConfig) if f.name != "method_sections"]
    if "method_sections" in raw:
        raise ConfigError(f"unknown config key 'method_sections' (valid: {', '.join(fields)})")
    if isinstance(raw.get("methods"), list):
        resolve = method_registry().resolve_method
        raw["methods"] = [resolve(m) if isinstance(m, str) and ":" in m else m for m in raw["methods"]]
    extra = {key: raw.pop(key) for key in list(raw) if key not in fields}
    if extra:
        types_ = method_section_types()
        unknown = [key for key in extra if key not in types_]
        if unknown:
            valid = [*fields, *types_]
            raise ConfigError(f"unknown config key '{unknown[0]}' (valid: {', '.join(valid)})")
        for key, value in extra.items():
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a mapping of {types_[key].__name__} fields")
    config = _from_dict(ExperimentConfig, raw)
    config.method_sections = {
        key: _from_dict(method_section_types()[key], value, key) for key, value in extra.items()
    }
    validate(config)
    return config


def to_dict(config) -> dict:
    """A config (or one section) as plain data; an ExperimentConfig as its YAML would hold it
    (each method section a top-level key)."""
    out = dataclasses.asdict(config)
    if isinstance(config, ExperimentConfig):
        out.update(out.pop("method_sections"))
    return out


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``a.b=value`` overrides to a raw mapping; values are parsed as YAML."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form section.field=value")
        dotted, text = item.split("=", 1)
        keys = dotted.strip().split(".")
        node = raw
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{key}' is not a section")
        try:
            node[keys[-1]] = load_yaml(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"override '{item}': not valid YAML ({_yaml_problem(error)})") from None
    return raw


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error in one line: the parser's problem and where (line and column, from 1)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def _read_yaml(path: Path, chain: tuple[Path, ...] = (), asked_by: Path | None = None) -> dict:
    """One YAML file as a mapping; ``extends: other.yaml`` (relative to the file) starts from
    that file's mapping and overrides it section by section (``asked_by``: the file whose
    ``extends`` names this one, for the error when it is missing)."""
    if not path.is_file():
        if asked_by is not None:
            raise ConfigError(
                f"{asked_by}: extends: {path.relative_to(asked_by.parent)}: no such file {path}"
            )
        raise ConfigError(f"{path}: config file not found")
    if path.resolve() in chain:
        raise ConfigError(f"{path}: 'extends' loops back to itself")
    try:
        raw = load_yaml(path.read_text()) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a config is YAML text)") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(error)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of config keys")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    base = _read_yaml(path.parent / str(parent), (*chain, path.resolve()), asked_by=path)
    base.pop("name", None)
    return _merged(base, raw)


def _merged(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        both_sections = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both_sections else value
    return out


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, typed: dict[str, str] | None = None
) -> ExperimentConfig:
    """Read a YAML experiment (:func:`load_yaml`; ``extends:`` a base file), apply overrides,
    validate. An invalid value is blamed on where it came from: the override that set it
    (``--set KEY=VALUE``, or as ``typed`` says the user typed it, e.g. ``{"seeds=0": "--seeds
    0"}``), else the config file."""
    raw: dict = {}
    overrides = overrides or []
    if path is not None:
        path = Path(path)
        raw = _read_yaml(path)
        raw.setdefault("name", path.stem)
    raw = apply_overrides(raw, overrides)
    try:
        return config_from_dict(raw)
    except ConfigError as error:
        field = str(error).split(":", 1)[0].strip()
        setting = [
            item
            for item in overrides
            if _override_key(item) == field or field.startswith(_override_key(item) + ".")
        ]
        if setting:
            item = setting[-1]
            where = f"{(typed or {}).get(item, f'--set {item}')}: "
        else:
            where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{error}") from None


def _override_key(item: str) -> str:
    return item.split("=", 1)[0].strip()


VALID_INPUTS = ("infrared", "visible")
PAPER_FUSION_TABLES = ("table1", "table4", "table6")  # segmentation.report.PAPER_FUSION_TABLES
FUSION_RULES = ("sum", "average", "l1_norm")  # feature merging of DIDFuse and AUIF
# a learned method's section: (field, smallest valid value), as MINIMUMS below
TRAINING_MINIMUMS = (("epochs", 1), ("batch_size", 1), ("crop_size", 8), ("lr", 0.0))
AUGMENTS = ("crop", "resized_crop")  # fusion.data.CROPS
CMT_PERCEPTUAL = ("efficientnet", "none")  # CMTFusion's perceptual network (VGG-19 needs a download)


# (dotted field, smallest valid value); a float's minimum is exclusive (a learning rate of 0
# trains nothing), an int's inclusive
MINIMUMS = (
    ("seeds", 1),
    ("data.synthetic.train", 1),
    ("data.synthetic.test", 1),
    ("data.synthetic.height", 16),
    ("data.synthetic.width", 16),
    ("fusion.structure_epochs", 0),
    ("fusion.fusion_epochs", 1),
    ("fusion.batch_size", 1),
    ("fusion.crop_size", 8),
    ("fusion.lr", 0.0),
    ("segmentation.epochs", 1),
    ("segmentation.freeze_epochs", 0),
    ("segmentation.freeze_batch_size", 1),
    ("segmentation.batch_size", 1),
    ("segmentation.decoder_channels", 1),
    ("segmentation.lr", 0.0),
    ("segmentation.eval_every", 0),
    ("segmentation.prediction_images", 0),
    ("segmentation.num_workers", -1),
    ("runtime.threads", 0),
    *(
        (f"slurm.{kind}.{field}", low)
        for kind in ("fusion", "fuse", "fuse_rule", "quality", "segmentation", "report")
        for field, low in (("gpus", 0), ("cpus", 1), ("mem_gb", 0.0), ("minutes", 1))
    ),
    ("slurm.retries", 0),
    ("slurm.timeouts", 0),
    ("slurm.array_parallelism", 1),
)
DEVICE = re.compile(r"^(?:auto|cpu|cuda|cuda:[0-9]+)$")


def _check_minimums(config: ExperimentConfig) -> None:
    sections = [
        (f"{name}.{field}", low)
        for name, section in config.method_sections.items()
        for field, low in getattr(section, "MINIMUMS", ())
    ]
    for dotted, low in (*MINIMUMS, *sections):
        value = config
        for part in dotted.split("."):
            value = getattr(value, part)
        if (value <= low) if isinstance(low, float) else (value < low):
            bound = f"> {low:g}" if isinstance(low, float) else f">= {low}"
            raise ConfigError(f"{dotted}: must be {bound}, got {value}")


def validate(config: ExperimentConfig) -> None:
    """Value checks that types alone cannot express, of the config and of the config each
    variant trains with."""
    _validate_values(config)
    for name in config.variants:
        _, changed = variant_config(config, name)
        try:
            _validate_values(changed)
        except ConfigError as error:
            raise ConfigError(f"variants.{name}: {error}") from None


def _validate_values(config: ExperimentConfig) -> None:
    seg, fus = config.segmentation, config.fusion
    _check_minimums(config)
    if not DEVICE.match(config.runtime.device):
        raise ConfigError(f"runtime.device: must be auto, cpu, cuda or cuda:N, got '{config.runtime.device}'")
    for name in config.inputs:
        if name not in VALID_INPUTS:
            raise ConfigError(
                f"inputs: unknown input '{name}' (valid: {', '.join(VALID_INPUTS)};"
                " fused inputs come from 'methods')"
            )
    if config.paper_fusion_table not in (None, *PAPER_FUSION_TABLES):
        raise ConfigError(
            f"paper_fusion_table: must be one of {', '.join(PAPER_FUSION_TABLES)} or null, "
            f"got {config.paper_fusion_table!r}"
        )
    if config.metrics_convention not in ("python", "matlab"):
        raise ConfigError("metrics_convention: must be 'python' or 'matlab'")
    if not 0 <= seg.freeze_epochs <= seg.epochs:
        raise ConfigError("segmentation.freeze_epochs: must be between 0 and segmentation.epochs")
    _validate_segmentation(seg)
    if config.external_grey not in ("recolour", "keep"):
        raise ConfigError(
            "external_grey: must be 'recolour' (visible Cb/Cr, as every built-in "
            "method gets) or 'keep' (three grey channels)"
        )
    if seg.decoder_channels < 1:
        raise ConfigError(f"segmentation.decoder_channels: must be >= 1, got {seg.decoder_channels}")
    if seg.crop is not None and len(seg.crop) != 2:
        raise ConfigError("segmentation.crop: must be [height, width] or null")
    if len(seg.scale_range) != 2 or not 0 < seg.scale_range[0] <= seg.scale_range[1]:
        raise ConfigError("segmentation.scale_range: must be [low, high] with 0 < low <= high")
    if len(fus.channels) < 1:
        raise ConfigError("fusion.channels: needs one width per level (at least one)")
    if len(fus.betas) != 2:
        raise ConfigError("fusion.betas: must be [beta1, beta2]")
    if fus.structure_target not in ("gradient", "features"):
        raise ConfigError("fusion.structure_target: must be 'gradient' or 'features' (eq. 2 readings)")
    if fus.output not in ("clamp", "sigmoid"):
        raise ConfigError("fusion.output: must be 'clamp' or 'sigmoid'")
    for section in config.method_sections.values():
        if hasattr(section, "check"):  # a section's own value checks (fusion.methods.*)
            section.check()
    if config.runtime.amp not in ("auto", "off", "bf16", "fp16"):
        raise ConfigError("runtime.amp: must be auto, off, bf16 or fp16")
    for switch in ("channels_last", "cudnn_benchmark", "deterministic"):
        if getattr(config.runtime, switch) not in ("auto", "on", "off"):
            raise ConfigError(f"runtime.{switch}: must be auto, on or off")


def check_frozen_encoder_is_trained(seg: SegmentationConfig) -> None:
    """A frozen phase needs a pretrained encoder (a random one learns nothing while frozen),
    unless the config opts in. Checked where segmentation is about to train (the trainer, the
    run plan), not at load time: configs that never train segmentation stay valid."""
    if seg.freeze_epochs > 0 and seg.encoder_weights is None and not seg.freeze_random_encoder:
        raise ConfigError(
            f"segmentation.freeze_epochs: {seg.freeze_epochs} epochs with a frozen encoder, but "
            "encoder_weights is null: a randomly initialised encoder learns nothing while frozen. "
            "Name encoder_weights, set freeze_epochs: 0, or opt in with freeze_random_encoder: true"
        )


def _validate_segmentation(seg: SegmentationConfig) -> None:
    if seg.output_stride not in (8, 16):
        raise ConfigError(f"segmentation.output_stride: must be 8 or 16, got {seg.output_stride}")
    if len(seg.atrous_rates) != 3 or min(seg.atrous_rates) < 1:
        raise ConfigError("segmentation.atrous_rates: must be three rates >= 1, e.g. [6, 12, 18]")
    if not 0.0 < seg.image_scale <= 1.0:
        raise ConfigError(f"segmentation.image_scale: must be in (0, 1], got {seg.image_scale}")
    if not 0.0 <= seg.rare_crop_fraction <= 1.0:
        raise ConfigError(f"segmentation.rare_crop_fraction: must be in [0, 1], got {seg.rare_crop_fraction}")
    if not 0.0 <= seg.val_fraction < 1.0:
        raise ConfigError(f"segmentation.val_fraction: must be in [0, 1), got {seg.val_fraction}")
    if seg.reported_model not in ("last", "lowest_val_loss"):
        raise ConfigError("segmentation.reported_model: must be 'last' or 'lowest_val_loss'")
    if seg.reported_model == "lowest_val_loss" and seg.val_fraction == 0:
        raise ConfigError(
            "segmentation.reported_model: lowest_val_loss needs a validation split "
            "(segmentation.val_fraction > 0)"
        )
    if (
        seg.warmup_epochs < 0
        or seg.hold_epochs < 0
        or seg.warmup_epochs + seg.hold_epochs >= max(seg.epochs, 1)
    ):
        raise ConfigError(
            "segmentation.warmup_epochs + hold_epochs: must leave cosine epochs "
            f"(got {seg.warmup_epochs} + {seg.hold_epochs} of {seg.epochs})"
        )


VARIANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
# config fields that change how fast or how verbosely a stage runs, not its result
NOT_RESULTS = ("num_workers", "eval_every", "prediction_images")


def variant_config(config: ExperimentConfig, name: str) -> tuple[str, ExperimentConfig]:
    """The registered method a method name runs and the config it runs with: ``(name, config)``
    for a registered or external method; for a variant (``config.variants``), its base and the
    config whose base section carries the variant's ``set``.

    A variant must change something that changes results: ``set`` values equal to the base's, or
    fields that change no number (:data:`NOT_RESULTS`), are refused (the variant would repeat the
    base's stages under another name)."""
    variant = config.variants.get(name)
    if variant is None:
        return name, config
    where = f"variants.{name}"
    if not VARIANT_NAME.match(name):
        raise ConfigError(f"{where}: a variant name is lower-case letters, digits, '-', '_' or '.'")
    registry = method_registry()
    try:
        learned = registry.is_trainable(variant.base)
    except ConfigError:
        learned = False
    if not learned:
        raise ConfigError(
            f"{where}.base: '{variant.base}' is not a learned method "
            f"(valid: {', '.join(registry.trainable_methods())}; "
            "a variant retrains its base with other settings)"
        )
    section_name = registry.section_of(variant.base)
    section = getattr(config, section_name)
    valid = [f.name for f in dataclasses.fields(section)]
    for key in variant.set:
        if key not in valid:
            raise ConfigError(
                f"{where}.set: '{key}' is not a field of {section_name} (valid: {', '.join(valid)})"
            )
    changed = section_from_dict(type(section), {**dataclasses.asdict(section), **variant.set}, f"{where}.set")
    differs = [k for k in variant.set if getattr(changed, k) != getattr(section, k) and k not in NOT_RESULTS]
    if not differs:
        raise ConfigError(
            f"{where}.set: changes nothing that changes results of {variant.base} "
            f"({', '.join(f'{k}={v!r}' for k, v in variant.set.items()) or 'empty'}); "
            "it would only repeat its stages"
        )
    return variant.base, with_section(config, section_name, changed)


def with_section(config: ExperimentConfig, name: str, section) -> ExperimentConfig:
    """A copy of ``config`` whose section ``name`` is ``section`` (the others shared)."""
    if name in {f.name for f in dataclasses.fields(ExperimentConfig)}:
        return dataclasses.replace(config, method_sections=dict(config.method_sections), **{name: section})
    return dataclasses.replace(config, method_sections={**config.method_sections, name: section})
