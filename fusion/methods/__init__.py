"""The fusion-method registry: name -> ``"module:function"`` builder, imported lazily so that
listing the names never loads torch models or optional libraries.

``build_method("gtf", lam=2)`` returns a method object (see :mod:`fusion.methods.base`);
``build_method("auif", checkpoint=path)`` loads a trained learned method (:data:`TRAINABLE`);
``build_method("external:/data/DDFM")`` wraps a folder of fused images made by another tool
(:mod:`fusion.methods.external`).
"""

from __future__ import annotations

import importlib
import inspect

from configs.schema import ConfigError

METHODS: dict[str, str] = {
    "sspfusion": "fusion.methods.sspfusion:build",
    "average": "fusion.methods.classic:build_average",
    "max": "fusion.methods.classic:build_max",
    "laplacian": "fusion.methods.classic:build_laplacian",
    "dwt": "fusion.methods.classic:build_dwt",
    "gff": "fusion.methods.classic:build_gff",
    "gtf": "fusion.methods.classic:build_gtf",
    "didfuse": "fusion.methods.didfuse:build",
    "auif": "fusion.methods.auif:build",
    "rfnnest": "fusion.methods.rfnnest:build",
    "umf": "fusion.methods.umf:build",
    "itfuse": "fusion.methods.itfuse:build",
    "cmtfusion": "fusion.methods.cmtfusion:build",
}
# methods with a training stage (fusion:<name>): built with checkpoint=<out>/fusion/<name>/model.pt
TRAINABLE = ("sspfusion", "didfuse", "auif", "rfnnest", "umf", "itfuse", "cmtfusion")
EXTERNAL_PREFIX = "external:"


def method_modules(name: str) -> list[str]:
    """The project modules building method ``name`` runs first (its registered builder's, and a
    learned method's recipe): the entries of its fuse stage's code identity."""
    if name.startswith(EXTERNAL_PREFIX):
        return ["fusion.methods.external"]
    if name not in METHODS:
        raise ConfigError(f"unknown fusion method '{name}' (valid: {', '.join(METHODS)})")
    modules = [METHODS[name].split(":")[0]]
    if name in TRAINABLE:
        from fusion.methods.learned import RECIPES

        modules.append(RECIPES[name].split(":")[0])
    return modules


def available_methods() -> list[str]:
    """Registered names, in registration order (``external:<folder>`` is accepted besides)."""
    return list(METHODS)


def build_method(name: str, **options):
    """Build the method called ``name`` with builder keyword ``options``."""
    if name.startswith(EXTERNAL_PREFIX):
        from fusion.methods.external import ExternalMethod

        folder = name.removeprefix(EXTERNAL_PREFIX)
        if not folder:
            raise ConfigError("external:<folder> needs a folder, e.g. external:/data/DDFM")
        return ExternalMethod(folder, **options)
    if name not in METHODS:
        raise ConfigError(
            f"unknown fusion method '{name}' (valid: {', '.join(METHODS)}, {EXTERNAL_PREFIX}<folder>)"
        )
    module_name, function = METHODS[name].split(":")
    builder = getattr(importlib.import_module(module_name), function)
    try:
        inspect.signature(builder).bind(**options)
    except TypeError as error:
        raise ConfigError(f"fusion method '{name}': bad options {sorted(options)} ({error})") from None
    return builder(**options)


__all__ = ["METHODS", "TRAINABLE", "available_methods", "build_method", "method_modules", "EXTERNAL_PREFIX"]
