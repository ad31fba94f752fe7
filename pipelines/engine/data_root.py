"""The data root a run reads: the one given (command line or config), else the built-in
synthetic scenes, generated once under ``<out>/data`` and regenerated when their settings or
the generator's code change."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from configs.schema import ConfigError, ExperimentConfig, to_dict
from pipelines.engine.code import code_digest
from pipelines.engine.identity import DIGESTS, Identity
from pipelines.engine.layout import RunLayout
from pipelines.engine.locks import locked
from pipelines.engine.markers import mark_started, move_aside, read_done, write_done


def is_synthetic(root: Path) -> bool:
    """Whether the data root holds the built-in synthetic scenes, by what its files are
    (:func:`msrs.synthetic.is_synthetic`)."""
    from msrs.synthetic import is_synthetic as made_by_generator

    return made_by_generator(root)


def resolve_data_root(
    config: ExperimentConfig, data_root: str | Path | None, layout: RunLayout, dry_run: bool = False
) -> Path:
    """The data root a stage reads: ``data_root`` (command line) if given, else ``data.root``
    (config), else the synthetic scenes generated under ``<out>/data`` (regenerated, the old
    set moved aside, when their settings or the generator's code changed; under the folder's
    lock, so that concurrent jobs generate it once). Binds the process's file-digest memo to
    the run folder (``layout.file_digests``). With ``dry_run`` nothing is written: scenes that
    would be generated are generated into a temporary folder (removed at exit), so the plan
    shows the identities the run would have."""
    DIGESTS.attach(layout.file_digests, save=not dry_run)
    if data_root is not None:
        return Path(data_root)
    if config.data.root is not None:
        return Path(config.data.root)
    if not config.data.synthetic_allowed:
        raise ConfigError(
            f"config '{config.name}' is for real data and has no data root: pass --data-root DIR "
            "(or set data.root); --set data.synthetic_allowed=true runs it on the synthetic scenes"
        )
    folder, synthetic = layout.data, config.data.synthetic
    identity = Identity({"config": to_dict(synthetic), "code": code_digest("msrs.synthetic")})
    done = read_done(folder)
    if done and done.get("identity") == identity.digest:
        return folder
    if dry_run:
        scratch = Path(tempfile.mkdtemp(prefix="fusionseg-dry-run-"))
        atexit.register(shutil.rmtree, scratch, ignore_errors=True)
        return _write_synthetic(scratch / "data", config, identity)
    with locked(folder, "generating the synthetic scenes", wait=True):
        done = read_done(folder)  # another process may have made them meanwhile
        if done and done.get("identity") == identity.digest:
            return folder
        if folder.exists():
            move_aside(folder, "stale")
        mark_started(folder, "data")
        return _write_synthetic(folder, config, identity)


def _write_synthetic(folder: Path, config: ExperimentConfig, identity: Identity) -> Path:
    from msrs.synthetic import write_synthetic

    synthetic = config.data.synthetic
    write_synthetic(
        folder,
        train=synthetic.train,
        test=synthetic.test,
        height=synthetic.height,
        width=synthetic.width,
        seed=synthetic.seed,
        night_fraction=synthetic.night_fraction,
    )
    write_done(
        folder,
        {
            "kind": "synthetic",
            "identity": identity.digest,
            "parts": identity.part_digests,
            "settings": to_dict(synthetic),
        },
    )
    return folder


__all__ = ["is_synthetic", "resolve_data_root"]
