"""Commands that cannot rot: every command line of the README and of docs/ that starts a script
of ``pipelines/`` is run here, so a renamed flag, config or method breaks the suite, not a reader.

``run_all.py`` commands run with ``--dry-run`` (everything a run checks, nothing written) in a
working folder laid out like the guides assume: ``configs/``, ``data/MSRS`` (generated scenes in
MSRS's layout), ``../shared/data/mfnet-156`` (the same in MFNet's), ``MSRS40`` (a fusion-only
pair folder), ``data/fused/<Name>`` (a folder of fused images), the modules the guides' own
code blocks define (``# mypkg/rules.py`` ...) and the example plugin, installed. A
``--data-root DIR`` is the MFNet root for an MFNet config and the MSRS one otherwise; an
``--out`` the command gives goes to a scratch folder, and a command without one plans in
``runs/quick``, whose synthetic scenes are generated once. The paper config's ImageNet encoder
weights cannot be downloaded here, so its commands run with ``segmentation.encoder_weights=null``
(the weights are checked by ``fetch_weights.py``). The other scripts run with ``--help``, and
every option the command gives must be one the script takes.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from configs.schema import load_config
from pipelines.engine import RunLayout, resolve_data_root

from .conftest import EXAMPLE_POINTS, REPO, fake_slurm, install_plugin, run_pipeline_here

GUIDES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SCRIPT = "python pipelines/"
DEFAULT_OUT = "runs/quick"
PAPER_OFFLINE = [
    "--set",
    "segmentation.encoder_weights=null",
    "--set",
    "segmentation.freeze_random_encoder=true",
]


def documented_commands(path: Path) -> list[str]:
    """The command lines of ``path`` that start a pipelines script: in code blocks (a trailing
    backslash continues a line; ``VAR=value`` before it and ``# comments`` after it are dropped)
    and in inline code."""
    commands, fence, pending = [], False, ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        if fence:
            line = pending + line.strip()
            if line.endswith("\\"):
                pending = line[:-1].rstrip() + " "
                continue
            pending = ""
            for part in line.split("&&"):
                part = part.split(" #")[0].strip()
                if SCRIPT in part:
                    commands.append(part[part.index(SCRIPT) :])
        else:
            commands += [span for span in re.findall(r"`([^`]+)`", line) if span.startswith(SCRIPT)]
    return commands


def all_commands() -> dict[str, list[str]]:
    """Every documented command -> the guides that show it."""
    found: dict[str, list[str]] = {}
    for path in GUIDES:
        for command in documented_commands(path):
            found.setdefault(command, []).append(str(path.relative_to(REPO)))
    return found


def _code_blocks(path: Path) -> dict[str, str]:
    """Python code blocks of a guide whose first line names their file (``# mypkg/rules.py``)."""
    blocks = re.findall(r"```python\n# ([\w/]+\.py)\n(.*?)```", path.read_text(), flags=re.S)
    return dict(blocks)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, synthetic_root, mfnet_root, photo_pairs) -> Path:
    base = tmp_path_factory.mktemp("documented")
    work = base / "work"
    (work / "data" / "fused").mkdir(parents=True)
    (work / "configs").symlink_to(REPO / "configs")
    (work / "data" / "MSRS").symlink_to(synthetic_root)
    (work / "MSRS40").symlink_to(photo_pairs)
    (base / "shared" / "data").mkdir(parents=True)
    (base / "shared" / "data" / "mfnet-156").symlink_to(mfnet_root)
    (base / "shared" / "data" / "msrs-test-40").symlink_to(photo_pairs)
    for name in ("MyMethod", "DDFM"):
        for split in ("train", "test"):
            shutil.copytree(synthetic_root / split / "vi", work / "data" / "fused" / name / split)
    install_plugin(base / "site", EXAMPLE_POINTS)
    # the default config's scenes, generated once: a command without --out plans in DEFAULT_OUT
    resolve_data_root(load_config(REPO / "configs" / "quick.yaml"), None, RunLayout(work / DEFAULT_OUT))
    for path in GUIDES:
        for name, code in _code_blocks(path).items():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            (target.parent / "__init__.py").touch()
            target.write_text(code)
    return work


def _option_value(args: list[str], option: str) -> str | None:
    return args[args.index(option) + 1] if option in args[:-1] else None


def prepare(command: str, work: Path, scratch: Path) -> tuple[str, list[str]]:
    """(script, arguments) of a documented command as the test runs it in ``work``."""
    tokens = shlex.split(command)
    script, args = Path(tokens[1]).stem, tokens[2:]
    config = _option_value(args, "--config") or ""
    if _option_value(args, "--data-root") == "DIR":
        args[args.index("--data-root") + 1] = "../shared/data/mfnet-156" if "mfnet" in config else "data/MSRS"
    if "--out" in args[:-1]:
        args[args.index("--out") + 1] = str(scratch)
    if script == "run_all":
        args += [] if "--dry-run" in args else ["--dry-run"]
        args += [] if "--out" in args else ["--out", DEFAULT_OUT]
        args += PAPER_OFFLINE if config.endswith("paper.yaml") else []
    else:
        args = ["--help"]
    return script, args


def run_documented(command: str, work: Path, scratch: Path, monkeypatch) -> str | None:
    """Run one documented command in ``work``; None when it runs, else what went wrong."""
    script, args = prepare(command, work, scratch)
    if "--launcher" in args:
        for key, value in fake_slurm(scratch.parent / "slurm-bin").items():
            monkeypatch.setenv(key, value)
    # the example plugin is installed (site/) and the guide's own modules are in work/
    result = run_pipeline_here(f"{script}.py", *args, paths=(work, work.parent / "site"), cwd=work)
    if result.returncode != 0:
        if "--only" in args and "build it first" in result.stderr:
            return None  # the selection is understood; the guide's run folder would hold its upstream
        return f"exit {result.returncode}: {(result.stdout + result.stderr)[-2000:]}"
    if args == ["--help"]:
        tokens, text = shlex.split(command)[2:], result.stdout
        given = [token.split("=")[0] for token in tokens if token.startswith("-")]
        unknown = [option for option in given if option not in text.split()]
        unknown += [word for word in tokens[:1] if not word.startswith("-") and word not in text]
        if unknown:
            return f"{script}.py does not take {', '.join(unknown)}"
    return None


def test_every_documented_command_runs(workdir, tmp_path, monkeypatch):
    commands = all_commands()
    assert len(commands) >= 40, commands
    failures = []
    for number, (command, guides) in enumerate(commands.items()):
        with monkeypatch.context() as patch:
            problem = run_documented(command, workdir, tmp_path / f"out{number}", patch)
        if problem:
            failures.append(f"{', '.join(guides)}: {command}\n    {problem}")
    print(f"{len(commands)} documented commands checked")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    "command",
    [
        "python pipelines/run_all.py --sed 3",  # a misspelt option
        "python pipelines/run_all.py --config configs/no-such.yaml",  # a config that is not there
        "python pipelines/run_all.py --methods sspfusion no-such-method",
        "python pipelines/train_fusion.py --metod didfuse",  # a script run with --help
        "python pipelines/benchmark.py no-such-benchmark",
    ],
)
def test_a_rotten_command_is_caught(command, workdir, tmp_path, monkeypatch):
    assert run_documented(command, workdir, tmp_path / "out", monkeypatch)


def test_commands_are_read_from_code_blocks_and_inline_code(tmp_path):
    guide = tmp_path / "guide.md"
    guide.write_text(
        "Run `python pipelines/fuse.py --method gtf` first.\n\n```bash\n"
        "pip install x && python pipelines/run_all.py \\\n    --seeds 3  # three\n"
        "PYTHONPATH=. python pipelines/run_all.py --dry-run\n```\n"
    )
    assert documented_commands(guide) == [
        "python pipelines/fuse.py --method gtf",
        "python pipelines/run_all.py --seeds 3",
        "python pipelines/run_all.py --dry-run",
    ]
