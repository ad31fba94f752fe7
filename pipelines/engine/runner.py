"""Decide what each stage of a plan needs and run it: the caching rules (one rule for run_all
and the stage scripts).

For each stage, in plan order, :func:`plan_status` decides from what is on disk:

* **cached**: ``done.json`` holds the stage's current identity and the output it recorded is
  still there unchanged; skipped;
* **stale**: finished under another identity (the reason names the parts that changed:
  config, code, data, external, upstream, precision), an upstream stage reruns first, or an
  unfinished folder of another identity; the folder is moved aside, never deleted, and the
  stage reruns;
* **resume**: no ``done.json`` but a checkpoint carrying the current identity;
* **new**: nothing there yet;
* **forced**: ``--force`` matched it or a stage it reads; the old result is moved aside too.

:func:`run_plan` refuses to run a stage whose upstream is neither current nor selected to run
before it (:class:`UpstreamError`), recomputes each identity once its upstream has finished
(upstream outputs are part of it) and writes ``done.json``.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable

from pipelines.engine.identity import DIGESTS, changed_settings
from pipelines.engine.locks import holder, locked
from pipelines.engine.markers import (
    checkpoint_identity,
    is_stage_folder,
    mark_started,
    move_aside,
    read_done,
    write_done,
)
from pipelines.engine.stage import STAGE_KINDS, Stage, UpstreamError

RUNS = ("stale", "resume", "new", "forced")  # statuses that run the stage


def _upstream_outputs(stage: Stage, by_key: dict[str, Stage]) -> dict[str, str] | None:
    """Output digests of the stage's upstream, or None while one of them is not current."""
    outputs = {}
    for key in stage.upstream:
        upstream = by_key[key]
        done = read_done(upstream.folder)
        if upstream.status != "cached" or not done:
            return None
        outputs[key] = done.get("output", "")
    return outputs


def _evaluate(stage: Stage, outputs: dict[str, str]) -> None:
    """Status of a stage whose upstream is current (``outputs``: their output digests)."""
    stage.identity = stage.identify(outputs)
    done = read_done(stage.folder)
    if done is not None:
        changed = stage.identity.changes(done.get("parts"))
        if changed:
            fields = changed_settings(done.get("config"), stage.identity.parts.get("config"))
            named = [
                f"config ({', '.join(fields)})" if part == "config" and fields else part for part in changed
            ]
            stage.status, stage.reason = "stale", "changed: " + ", ".join(named)
        elif done.get("output") != stage.output():
            stage.status, stage.reason = "stale", "its output was modified after it finished"
        else:
            stage.status, stage.reason = "cached", "identity and output unchanged"
        return
    stored = checkpoint_identity(stage.folder)
    if stored == stage.identity.digest:
        stage.status, stage.reason = "resume", "unfinished; its checkpoint has this identity"
    elif stored is not None:
        stage.status, stage.reason = "stale", "unfinished; its checkpoint has another identity"
    elif stage.folder.exists() and not is_stage_folder(stage.folder):
        stage.status = "stale"
        stage.reason = "its folder holds files this tool did not write: it is not moved aside, the run stops"
    elif stage.folder.exists() and any(stage.folder.iterdir()):
        stage.status, stage.reason = "stale", "unfinished, without a checkpoint"
    else:
        stage.status, stage.reason = "new", "not run yet"


def plan_status(stages: list[Stage], force: list[str] = ()) -> None:
    """Fill ``status`` and ``reason`` of every stage from what is on disk, in plan order."""
    by_key = {stage.key: stage for stage in stages}
    for stage in stages:
        stage.identity = None
        forced = [selector for selector in force if stage.matches(selector)]
        forced_upstream = [key for key in stage.upstream if by_key[key].status == "forced"]
        rerun_upstream = [key for key in stage.upstream if by_key[key].status in RUNS]
        if forced:
            stage.status, stage.reason = "forced", "--force " + " ".join(forced)
        elif forced_upstream:
            stage.status, stage.reason = "forced", f"reads {', '.join(forced_upstream)} (forced)"
        elif not stage.cache:
            stage.status, stage.reason = "new", "rebuilt whenever it runs"
        elif rerun_upstream:
            stage.status = "stale" if stage.folder.exists() else "new"
            stage.reason = f"reads {', '.join(rerun_upstream)}, which runs first"
        else:
            _evaluate(stage, _upstream_outputs(stage, by_key) or {})
        busy = holder(stage.folder)  # another process works on it now
        if busy:
            stage.reason += f"; busy: {busy}"
    DIGESTS.save()


def check_selectors(stages: list[Stage], selectors: list[str], option: str) -> None:
    """Every ``--only`` / ``--force`` selector must match a stage of the plan: a typo is an error
    listing what is valid, not a run that does nothing."""
    for selector in selectors:
        if not any(stage.matches(selector) for stage in stages):
            kinds = sorted({stage.kind for stage in stages}, key=STAGE_KINDS.index)
            rows = sorted({f"input={stage.row.name}" for stage in stages if stage.kind == "segmentation"})
            raise UpstreamError(
                f"{option} {selector}: matches no stage of this plan (valid: the kinds "
                f"{', '.join(kinds)}; the rows {', '.join(rows)}; or a key: "
                f"{', '.join(stage.key for stage in stages)})"
            )


def stage_command(command: list[str], key: str, threads: int, forced: bool = False) -> list[str]:
    """The command line that runs the one stage ``key`` in a process of its own (``run_all
    --jobs`` and ``--launcher slurm``): run_all's ``command`` (without launcher options), the
    stage, ``--force`` when forced, and its share of the cores as torch threads."""
    force = ["--force", key] if forced else []
    return [*command, "--only", key, *force, "--set", f"runtime.threads={threads}"]


def selected(stages: list[Stage], only: list[str]) -> list[Stage]:
    return [s for s in stages if not only or any(s.matches(sel) for sel in only)]


def check_upstream(stages: list[Stage], chosen: list[Stage], command: str) -> None:
    """Raise :class:`UpstreamError` for the first chosen stage that would run on a stage that is
    neither current nor chosen to run before it."""
    by_key = {stage.key: stage for stage in stages}
    keys = {stage.key for stage in chosen}
    for stage in chosen:
        if stage.status == "cached":
            continue
        for key in stage.upstream:
            upstream = by_key[key]
            if upstream.status != "cached" and key not in keys:
                raise UpstreamError(
                    f"{stage.key} reads {key}, which is {upstream.status} ({upstream.reason}); "
                    f"build it first: {command} --only {key}"
                )


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def run_stage(stage: Stage, by_key: dict[str, Stage], environment: dict, main: bool = True) -> dict | None:
    """Run one stage now (its upstream is current): move a stale or forced folder aside, resume
    a matching checkpoint, write ``done.json``. Returns the done payload, or None when the
    stage turned out current once its upstream had run (same upstream output as before).
    ``main`` is false on the torchrun ranks other than 0: they train but move and mark
    nothing."""
    outputs = _upstream_outputs(stage, by_key)
    if outputs is None:
        missing = [key for key in stage.upstream if by_key[key].status != "cached"]
        raise UpstreamError(f"{stage.key}: upstream {', '.join(missing)} is not current")
    with locked(stage.folder, f"run_all stage {stage.key}") if main else contextlib.nullcontext():
        return _run_locked(stage, outputs, environment, main)


def _run_locked(stage: Stage, outputs: dict[str, str], environment: dict, main: bool) -> dict | None:
    """:func:`run_stage` once the stage folder's lock is held: its status is decided again
    (another process may have finished or changed it since the plan looked)."""
    if stage.cache and stage.status != "forced":
        _evaluate(stage, outputs)
        if stage.status == "cached":
            return None
    else:
        stage.identity = stage.identify(outputs)
    if main and stage.cache and stage.status in ("stale", "forced") and stage.folder.exists():
        kept = move_aside(stage.folder, stage.status)
        stage.reason += f"; previous result kept in {kept.name}"
    if main and stage.cache:
        mark_started(stage.folder, stage.key)
    began = time.perf_counter()
    result = stage.run(stage.status == "resume", stage.identity.digest)
    seconds = time.perf_counter() - began
    payload = {
        "stage": stage.key,
        "identity": stage.identity.digest,
        "parts": stage.identity.part_digests,
        "config": stage.identity.parts.get("config"),  # the settings, to name what changed later
        "upstream": outputs,
        "output": "",
        "seconds": round(seconds, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "environment": environment,
        "result": result if isinstance(result, dict) else None,
    }
    if main and stage.cache:
        stage.folder.mkdir(parents=True, exist_ok=True)
        payload["output"] = stage.output()
        write_done(stage.folder, payload)
        DIGESTS.save()
    stage.status = "cached" if stage.cache else "done"
    return payload


def run_alone(
    stage: Stage, force: bool, environment: dict, main: bool = True, log: Callable[[str], None] = print
) -> dict:
    """A stage outside a plan (the stage scripts), under the same rules as in one; returns its
    ``done.json`` payload (the earlier one when it was cached)."""
    plan_status([stage], [stage.key] if force else [])
    log(f"{stage.key}: {stage.status} ({stage.reason}) -> {stage.folder}")
    if stage.status == "cached":
        return read_done(stage.folder) or {}
    return run_stage(stage, {stage.key: stage}, environment, main) or {}


def run_plan(
    stages: list[Stage], only: list[str], environment: dict, command: str, log: Callable[[str], None] = print
) -> dict:
    """Run the selected stages in order; returns {key: status before the run}. ``only`` limits
    to matching stages; ``command`` is how the user reruns this plan (for error messages)."""
    chosen = selected(stages, only)
    check_upstream(stages, chosen, command)
    by_key = {stage.key: stage for stage in stages}
    before = {stage.key: stage.status for stage in chosen}
    todo = [s for s in chosen if s.status != "cached"]
    start = time.perf_counter()
    took: dict[str, list[float]] = {}
    for number, stage in enumerate(chosen, 1):
        prefix = f"[{number}/{len(chosen)}] {stage.key}"
        if stage.status == "cached":
            log(f"{prefix}: cached ({stage.folder})")
            continue
        left = todo[todo.index(stage) + 1 :]
        log(
            f"{prefix}: {stage.status} ({stage.reason}) - {stage.describe}; elapsed "
            f"{_duration(time.perf_counter() - start)}{_time_left(took, left)}"
        )
        began, resumed = time.perf_counter(), stage.status == "resume"
        if run_stage(stage, by_key, environment) is None:
            log(f"{prefix}: cached after all (its upstream output did not change)")
            continue
        if not resumed:  # a resumed stage's time is only its remainder: no estimate for others
            took.setdefault(stage.kind, []).append(time.perf_counter() - began)
    cached = sum(1 for status in before.values() if status == "cached")
    log(f"all {len(chosen)} stages finished in {_duration(time.perf_counter() - start)} ({cached} cached)")
    return before


def _time_left(took: dict[str, list[float]], left: list[Stage]) -> str:
    """What remains after the current stage, from the mean time of each kind run so far.

    A kind not run yet is not guessed from the others (a segmentation run takes many times a
    fusion-metrics pass): it is named instead, until its first stage has been timed.
    """
    if not left:
        return ""
    known = sum(sum(took[s.kind]) / len(took[s.kind]) for s in left if s.kind in took)
    untimed = Counter(s.kind for s in left if s.kind not in took)
    if not untimed:
        return f", about {_duration(known)} left after it"
    names = " and ".join(f"{count} {kind}" for kind, count in untimed.items())
    timed = f"about {_duration(known)} plus " if known else ""
    return f", {timed}{names} stage(s) not timed yet left after it"


__all__ = [
    "plan_status",
    "run_plan",
    "run_stage",
    "run_alone",
    "check_upstream",
    "selected",
]
