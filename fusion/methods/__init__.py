"""The fusion-method registry: every method, built in or a user's, registered once with
:func:`register_method`; everything else the tool needs (trainable or not, the row's display
name, the config section and its type, the code of its stages' identity) comes from that entry.

Where methods come from:

- **built in**: each module and subpackage of ``fusion.methods`` is imported the first time a
  name is looked up, and registers what it holds (``classic.py`` the fusion rules, each learned
  method's folder its recipe);
- **installed plugins**: a package declares ``[project.entry-points."fusionseg.methods"]``
  ``<name> = "<module>"``; that module is imported when ``<name>`` is first asked for, and must
  register ``<name>``;
- **a module named in the config**: ``methods: [mypkg.fusion:mymethod]`` imports ``mypkg.fusion``
  and uses what ``mymethod`` there registered (:func:`resolve_method`);
- **a folder of fused images**: ``external:<folder>`` (:mod:`fusion.methods.external`).

A registered rule is built with its config section's fields as keyword arguments
(``build_method("gtf")``); a trainable method (a network and its training recipe) is built from
the checkpoint its ``fusion:<name>`` stage trained (``build_method("auif", checkpoint=path)``).
Listing and looking up names imports no torch model a run does not use.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import inspect
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from configs.schema import ConfigError, ToolError, use_method_registry

ENTRY_POINT_GROUP = "fusionseg.methods"
EXTERNAL_PREFIX = "external:"


def external_folder(name: str) -> str | None:
    """The folder of an ``external:<folder>`` method name (images made elsewhere), else None:
    the one place such a name is read."""
    return name.removeprefix(EXTERNAL_PREFIX) if name.startswith(EXTERNAL_PREFIX) else None


def method_folder(name: str) -> str:
    """The folder name of a method's stages: itself, or ``external-DDFM`` for
    ``external:/data/DDFM``."""
    folder = external_folder(name)
    return name if folder is None else "external-" + Path(folder.rstrip("/")).name


@dataclass(frozen=True)
class MethodEntry:
    """One registered method. ``build(**options)`` returns a method object
    (:mod:`fusion.methods.base`); ``config``: the dataclass of its settings (its config section,
    named ``section``) or None; ``recipe``: how it trains (``"module:attribute"`` of a
    :class:`fusion.methods.learned.Recipe`, or the object), None for a rule; ``modules``: the
    modules its stages' code identity starts from; ``origin``: where it was registered (a file)."""

    name: str
    display: str
    build: Callable | None
    config: type | None
    section: str
    recipe: object | None
    modules: tuple[str, ...]
    origin: str

    @property
    def trainable(self) -> bool:
        return self.recipe is not None


class MethodError(ToolError, ValueError):
    """A registered method breaks its contract in use (a network's output, a loss): the message
    names the method, the file that registered it and the problem."""


_REGISTRY: dict[str, MethodEntry] = {}
_discovered = False
_PACKAGE_DIR = __path__[0]  # a method registered from here is a built-in


def _origin(target) -> str:
    try:
        return inspect.getsourcefile(target) or repr(target)
    except TypeError:
        return repr(target)


def register_method(
    name: str,
    *,
    display: str | None = None,
    config: type | None = None,
    section: str | None = None,
    recipe: object | None = None,
    loss: Callable | None = None,
    title: str | None = None,
):
    """Register a fusion method called ``name`` (shown as ``display`` in Table 2).

    Three forms::

        @register_method("myrule", config=MyRuleConfig)      # a rule: its builder, called with
        def build(weight: float = 0.5) -> LuminanceMethod:   # the config section's fields
            ...

        @register_method("mynet", config=MyNetConfig, loss=my_loss)   # a trainable network:
        class MyNet(nn.Module):                  # built from its config section, forward(ir, vi)
            ...                                  # -> fused luminance; one phase of the
                                                 # section's epochs, lr, batch_size, crop_size

        RECIPE = register_method("didfuse", config=DIDFuseConfig, recipe=Recipe(...))  # any recipe

    ``config``: a dataclass whose fields are the settings of the config section ``section``
    (default: ``name``); ``loss(model, ir, vi, section) -> (loss, {term: value})``.
    """
    if not name or ":" in name or name != name.strip():
        raise ConfigError(f"register_method: '{name}' is not a method name (no ':' or spaces)")
    if config is not None and not dataclasses.is_dataclass(config):
        raise ConfigError(f"register_method('{name}'): config= must be a dataclass, got {config!r}")
    display = display or name

    def add(build, recipe, module: str | None, origin: str) -> None:
        modules = tuple(dict.fromkeys(m for m in (module, _recipe_module(recipe)) if m))
        item = MethodEntry(name, display, build, config, section or name, recipe, modules, origin)
        previous = _REGISTRY.get(name)
        if previous is not None and previous.origin != origin:
            raise ConfigError(
                f"{origin}: method '{name}' is already registered by {previous.origin}; "
                "give it a name of its own"
            )
        _REGISTRY[name] = item

    if recipe is not None:  # called, not decorating: the calling module registers
        caller = sys._getframe(1).f_globals
        add(None, recipe, caller.get("__name__"), caller.get("__file__", "?"))
        return recipe

    def decorate(target):
        origin = _origin(target)
        torch = sys.modules.get("torch")  # not imported: the target is no network
        if torch is not None and isinstance(target, type) and issubclass(target, torch.nn.Module):
            if loss is None:
                raise ConfigError(f"{origin}: register_method('{name}') on a network needs loss=")
            from fusion.methods.learned import network_recipe

            built = network_recipe(name, title or display, target, loss, section or name)
            add(None, built, target.__module__, origin)
        elif callable(target):
            add(target, None, target.__module__, origin)
        else:
            raise ConfigError(f"{origin}: register_method('{name}') decorates a builder or a network")
        target.registered_method = name
        return target

    return decorate


def _recipe_module(recipe) -> str | None:
    if recipe is None:
        return None
    if isinstance(recipe, str):
        return recipe.split(":")[0]
    return getattr(recipe.build_model, "__module__", None)


def _discover_built_in() -> None:
    """Import every module and subpackage of this package once: each registers its methods."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


@cache
def _plugins() -> dict[str, importlib.metadata.EntryPoint]:
    """The installed plugins by name, read once a process (every lookup of a name asks)."""
    return {point.name: point for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _load_plugin(point: importlib.metadata.EntryPoint) -> None:
    where = f"plugin '{point.name}' ({point.value}" + (f", package {point.dist.name})" if point.dist else ")")
    if point.name in _REGISTRY:
        if _REGISTRY[point.name].origin.startswith(_PACKAGE_DIR):
            raise ConfigError(
                f"{where}: '{point.name}' is a built-in method; a plugin needs a name of its own"
            )
        return  # loaded before
    try:
        point.load()
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(f"{where}: failed to import: {type(error).__name__}: {error}") from None
    if point.name not in _REGISTRY:
        raise ConfigError(f"{where}: importing it registered no method '{point.name}' (register_method)")


def entry(name: str) -> MethodEntry:
    """The registered method ``name`` (a built-in or an installed plugin's)."""
    _discover_built_in()
    point = _plugins().get(name)
    if point is not None:
        _load_plugin(point)
    if name not in _REGISTRY:
        raise ConfigError(
            f"unknown fusion method '{name}' (valid: {', '.join(available_methods())}, "
            f"{EXTERNAL_PREFIX}<folder>, or module:name of a method your code registers)"
        )
    return _REGISTRY[name]


def resolve_method(name: str) -> str:
    """The registered name a config's method names: itself, or for ``module:attribute`` the
    name ``attribute`` of ``module`` registered (importing the module). ``external:`` folders are
    returned as they are."""
    if external_folder(name) is not None or ":" not in name:
        return name
    module_name, attribute = name.split(":", 1)
    _discover_built_in()
    try:
        module = importlib.import_module(module_name)
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(
            f"method '{name}': failed to import {module_name}: {type(error).__name__}: {error}"
        ) from None
    target = getattr(module, attribute, None)
    registered = getattr(target, "registered_method", None) if target is not None else None
    if registered is None and attribute in _REGISTRY and _REGISTRY[attribute].modules[:1] == (module_name,):
        registered = attribute
    if registered is None:
        raise ConfigError(
            f"method '{name}': {getattr(module, '__file__', module_name)} has no method '{attribute}' "
            "registered with register_method"
        )
    return registered


def available_methods() -> list[str]:
    """Registered names and installed plugins' names, in name order (registration order hangs
    on which module a process imported first)."""
    _discover_built_in()
    return sorted({*_REGISTRY, *_plugins()})


def trainable_methods() -> list[str]:
    """The methods with a training stage (``fusion:<name>``) registered so far, in name order."""
    _discover_built_in()
    return sorted(name for name, item in _REGISTRY.items() if item.trainable)


def is_trainable(name: str) -> bool:
    return external_folder(name) is None and entry(name).trainable


def display_name(name: str) -> str:
    """The name a method's Table 2 row shows (its ``display``); unknown names as they are."""
    try:
        return entry(name).display
    except ConfigError:
        return name


def method_modules(name: str) -> list[str]:
    """The modules building method ``name`` runs first (its registered builder's, and a
    trainable method's recipe): the entries of its stages' code identity."""
    if external_folder(name) is not None:
        return ["fusion.methods.external"]
    return list(entry(name).modules)


def section_of(name: str) -> str:
    """The config section holding method ``name``'s settings."""
    return entry(name).section


def section_types() -> dict[str, type]:
    """Config section name -> settings dataclass of every registered method that has one."""
    _discover_built_in()
    return {item.section: item.config for item in _REGISTRY.values() if item.config is not None}


def build_method(name: str, section=None, **options):
    """Build the method called ``name``: a rule with its ``section`` (the config's, or the
    defaults) as keyword arguments plus ``options``; a trainable one from ``checkpoint=``."""
    folder = external_folder(name)
    if folder is not None:
        from fusion.methods.external import ExternalMethod

        if not folder:
            raise ConfigError("external:<folder> needs a folder, e.g. external:/data/DDFM")
        return ExternalMethod(folder, **options)
    item = entry(name)
    if item.trainable:
        from fusion.methods.learned import build_trained

        builder = lambda checkpoint, device="auto": build_trained(name, checkpoint, device)  # noqa: E731
    else:
        builder = item.build
        if section is None and item.config is not None:
            section = item.config()
        if section is not None:
            options = {**dataclasses.asdict(section), **options}
    try:
        inspect.signature(builder).bind(**options)
    except TypeError as error:
        raise ConfigError(
            f"{item.origin}: fusion method '{name}': its builder does not take {sorted(options)} ({error})"
        ) from None
    return builder(**options)


use_method_registry(sys.modules[__name__])

__all__ = [
    "ENTRY_POINT_GROUP",
    "EXTERNAL_PREFIX",
    "MethodEntry",
    "MethodError",
    "available_methods",
    "build_method",
    "display_name",
    "entry",
    "external_folder",
    "is_trainable",
    "method_folder",
    "method_modules",
    "register_method",
    "resolve_method",
    "section_of",
    "section_types",
    "trainable_methods",
]
