"""What a stage's result depends on, by content: its identity.

An identity has named parts, each reduced to a short digest:

* ``config``: the config fields that change the result (``num_workers``, ``eval_every``,
  ``prediction_images``, ``threads``, ``device`` ... do not), the seed, the method;
* ``code``: a digest of the project code the stage runs, docstrings and comments aside
  (:mod:`pipelines.engine.code`);
* ``data``: a manifest of the data-root files the stage reads (the infrared, visible and label
  files of the pairs of its splits, whatever the layout): every file's name relative to the
  root, its split, and the SHA-256 of its bytes (:class:`FileDigests`), so a relabelled,
  replaced, added, removed or edited file, or a pair moved to another split, is seen whatever
  its size and modification time;
* ``external``: the manifest of an ``external:<folder>`` (same rule) and its grey mode;
* ``upstream``: the output digests of the stages it reads, as recorded in their ``done.json``
  (the SHA-256 of ``model.pt``, the manifest of a fused folder);
* ``precision``: the autocast dtype the training ran in (fp32, bfloat16, float16).

Two identities are equal when every part is; :meth:`Identity.changes` names the parts that
differ, which is what ``run_all --dry-run`` prints for a stale stage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from configs.schema import NOT_RESULTS
from pipelines.engine.markers import MARKERS
from runtime.files import file_sha256, write_json_atomic


def digest(payload) -> str:
    """Short stable digest of plain data (dicts, lists, strings, numbers)."""
    if dataclasses.is_dataclass(payload):
        payload = dataclasses.asdict(payload)
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FileDigests:
    """SHA-256 of files' bytes, each remembered with the file's (size, mtime_ns, ctime_ns, inode)
    and read again when any of them changes.

    DECISION: contents, not metadata, identify inputs; remembering them keeps a cached rerun on
    MSRS-size data at a stat per file. The change time (ctime) cannot be set from user space, so
    a file rewritten or replaced, even with its old size and modification time restored, is
    always hashed again. :meth:`attach` keeps the memo in a JSON file of the run folder
    (``runs/<exp>/.file-digests.json``) across runs; without it the memo lives for the process.
    """

    def __init__(self):
        """An empty memo, not attached to a file."""
        self._known: dict[str, list] = {}
        self._path: Path | None = None
        self._dirty = False
        self._save = True

    def attach(self, path: str | Path, save: bool = True) -> None:
        """Use the memo of ``path`` (none when missing or unreadable) and, with ``save``, save
        there from now on (``save=False``: a dry run, which writes nothing)."""
        self._save = save
        if self._path == Path(path):
            return
        self._path = Path(path)
        try:
            known = json.loads(self._path.read_text())
        except (OSError, ValueError):
            known = {}
        self._known = known if isinstance(known, dict) else {}
        self._dirty = False

    def of(self, path: str | Path, stat: os.stat_result | None = None) -> str:
        """The SHA-256 (16 hex digits) of the file's bytes."""
        path = os.path.abspath(path)
        stat = stat or os.stat(path)
        key = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        known = self._known.get(path)
        if known is not None and known[:4] == key:
            return known[4]
        sha = file_sha256(path)
        self._known[path] = [*key, sha]
        self._dirty = True
        return sha

    def save(self) -> None:
        """Write the memo (atomically) when it changed and a file is attached, under the file's
        lock, merged with what other processes saved there meanwhile (theirs kept where this
        process knows nothing newer)."""
        if not (self._dirty and self._path is not None and self._save):
            return
        from pipelines.engine.locks import locked

        with locked(self._path, "saving file digests", wait=True):
            try:
                on_disk = json.loads(self._path.read_text())
            except (OSError, ValueError):
                on_disk = {}
            merged = {**(on_disk if isinstance(on_disk, dict) else {}), **self._known}
            write_json_atomic(self._path, merged)
        self._known = merged
        self._dirty = False


DIGESTS = FileDigests()  # the process's memo; the plan attaches it to the run folder


def file_digest(path: str | Path) -> str:
    """SHA-256 (first 16 hex digits) of a file's bytes."""
    return DIGESTS.of(path)


def result_fields(section) -> dict:
    """A config section as a dict, less the fields in :data:`NOT_RESULTS`."""
    return {key: value for key, value in dataclasses.asdict(section).items() if key not in NOT_RESULTS}


def _walk(folder: str, prefix: str, entries: list) -> None:
    try:
        listing = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return
    with listing:
        for entry in listing:
            if entry.name.startswith(".") or (not prefix and entry.name in MARKERS):
                continue
            if entry.is_dir():
                _walk(entry.path, f"{prefix}{entry.name}/", entries)
            else:
                entries.append((prefix + entry.name, DIGESTS.of(entry.path, entry.stat())))


def folder_manifest(folder: str | Path) -> str:
    """Digest of every file under ``folder`` (relative name, SHA-256 of its bytes); hidden files
    (atomic-write temporaries) and the folder's own ``done.json`` are left out. A missing folder
    has the digest of an empty one."""
    entries: list = []
    _walk(str(folder), "", entries)
    return digest(sorted(entries))


class Manifests:
    """Folder and data manifests computed once per plan (many stages read the same data)."""

    def __init__(self):
        """An empty cache."""
        self._known: dict[str, str] = {}

    def of_data(self, root: Path, splits, parts) -> str:
        """One digest over the files holding ``parts`` (``ir``, ``vi``, ``label``) of every pair
        of ``splits`` of the data root ``root`` (``msrs.layout.list_split``)."""
        from msrs.layout import list_split

        digests = []
        for split in splits:
            key = f"data:{root}:{split}:{','.join(parts)}"
            if key not in self._known:
                pairs = list_split(root, split, labels="label" in parts)
                entries = [
                    (os.path.relpath(path, root), DIGESTS.of(path))
                    for pair in pairs
                    for path in pair.files(parts)
                ]
                self._known[key] = digest([split, sorted(entries)])
            digests.append(self._known[key])
        return digest(digests)

    def of(self, *folders: Path) -> str:
        """One digest over the manifests of ``folders``, in the given order."""
        parts = []
        for folder in folders:
            key = str(folder)
            if key not in self._known:
                self._known[key] = folder_manifest(folder)
            parts.append(self._known[key])
        return digest(parts)


def _flat(settings, prefix: str = "") -> dict:
    if not isinstance(settings, dict):
        return {prefix: settings}
    out = {}
    for key, value in settings.items():
        out |= _flat(value, f"{prefix}.{key}" if prefix else str(key))
    return out


def changed_settings(before: dict | None, now: dict | None, shown: int = 4) -> list[str]:
    """The settings that differ between two ``config`` parts, as ``key old -> new`` (at most
    ``shown`` of them, then how many more); empty when the old one was not recorded."""
    if not isinstance(before, dict) or not isinstance(now, dict):
        return []
    old, new = _flat(before), _flat(now)
    keys = [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    text = [f"{key} {old.get(key, '(none)')} -> {new.get(key, '(none)')}" for key in keys[:shown]]
    return text + ([f"{len(keys) - shown} more"] if len(keys) > shown else [])


@dataclass
class Identity:
    """The named parts a stage's result depends on (see the module docstring)."""

    parts: dict

    @property
    def part_digests(self) -> dict[str, str]:
        return {name: digest(value) for name, value in sorted(self.parts.items())}

    @property
    def digest(self) -> str:
        return digest(self.part_digests)

    def changes(self, recorded: dict | None) -> list[str]:
        """Names of the parts that differ from ``recorded`` (a done.json's ``parts``)."""
        recorded = recorded or {}
        mine = self.part_digests
        return [name for name in sorted(set(mine) | set(recorded)) if mine.get(name) != recorded.get(name)]


__all__ = [
    "DIGESTS",
    "FileDigests",
    "Identity",
    "Manifests",
    "changed_settings",
    "digest",
    "file_digest",
    "folder_manifest",
    "result_fields",
    "NOT_RESULTS",
]
