"""Progress display: a tqdm bar on a terminal, one plain line per loop in a log.

A tqdm bar redraws itself with carriage returns, which a terminal shows as one moving line and a
log file (``> run.log``, CI, a cluster job) keeps as thousands of fragments. :func:`progress_bar`
decides once, from the stream the bar would draw on (stderr), which of the two to give:

* a terminal gets the ``tqdm`` bar, unchanged;
* anything else gets :class:`LoopLine`, which iterates silently, keeps what the loop reports
  through ``set_postfix`` (loss terms, images/s) and prints one line to stdout when the loop
  ends: ``<desc>: loss=0.412 lr=0.007 img_s=38.2 elapsed=3.1s``.

Imports nothing of the project.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from tqdm import tqdm


def is_terminal(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (default: stderr, where tqdm draws) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class LoopLine:
    """Wraps an iterable like a tqdm bar but prints a single summary line when it is exhausted.

    ``facts`` (e.g. ``lr=...``) are printed with the last values given to :meth:`set_postfix`;
    ``elapsed`` is the wall time of the loop."""

    def __init__(self, iterable: Iterable, desc: str, out: TextIO | None = None, **facts: Any):
        """``out``: where the line goes (default: stdout at the time the line is printed)."""
        self.iterable = iterable
        self.desc = desc
        self.out = out
        self.facts = dict(facts)
        self.postfix: dict[str, Any] = {}

    def set_postfix(self, ordered_dict: dict | None = None, **values: Any) -> None:
        """The tqdm call the loops already make (it replaces the shown values, as tqdm's does);
        the last values are kept for the final line."""
        self.postfix = {**(ordered_dict or {}), **values}

    def __len__(self) -> int:
        return len(self.iterable)

    def __iter__(self) -> Iterator:
        start, count = time.perf_counter(), 0
        for item in self.iterable:
            count += 1
            yield item
        fields = {**self.postfix, **self.facts}
        if not fields:
            fields["items"] = count
        parts = [f"{key}={_format(value)}" for key, value in fields.items()]
        parts.append(f"elapsed={time.perf_counter() - start:.1f}s")
        print(f"{self.desc}: {' '.join(parts)}", file=self.out or sys.stdout, flush=True)


def progress_bar(iterable: Iterable, desc: str, enabled: bool = True, **facts: Any):
    """A tqdm bar around ``iterable`` on a terminal, a :class:`LoopLine` elsewhere, the bare
    iterable when ``enabled`` is False (another rank, ``--no-progress``). ``facts`` are extra
    values for the plain line beside the loop's own (e.g. the epoch's learning rate)."""
    if not enabled:
        return iterable
    if is_terminal():
        return tqdm(iterable, desc=desc, leave=False)
    return LoopLine(iterable, desc, **facts)


__all__ = ["LoopLine", "is_terminal", "progress_bar"]
