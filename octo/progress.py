"""Progress output that reads well in a terminal and in a log file.

In a terminal, a long loop shows a tqdm bar with its rate, redrawn in place. When stderr is not a terminal
(``make demo > log 2>&1``, a Slurm log, CI), redrawing in place writes one carriage-return line per refresh
into the file (a 10-minute run: thousands of them), so instead:

* ``quiet_libraries()``, called by the ``octo`` command before any stage loads, turns off the bars of the
  libraries (transformers' "Loading weights", datasets, huggingface_hub, datatrove's readers, lighteval's
  splits) through their environment switches (``TQDM_DISABLE``, ``HF_HUB_DISABLE_PROGRESS_BARS``); a
  variable the user set is left alone;
* ``bar(...)``, used by the project's own long loops, writes a plain line with the rate every
  ``LOG_INTERVAL`` seconds and at the end (``name: 40%|####  | 4/10 [00:02<00:03, 2.0step/s]``).
"""

from __future__ import annotations

import os
import sys

LOG_INTERVAL = 30.0  # seconds between progress lines in a log file


def interactive(stream=None) -> bool:
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)())


def quiet_libraries(stream=None) -> None:
    """Without a terminal, switch off third-party progress bars (before their modules are imported)."""
    if interactive(stream):
        return
    os.environ.setdefault("TQDM_DISABLE", "1")  # tqdm's own default; bars that pass disable= explicitly stay
    os.environ.setdefault("TQDM_MININTERVAL", str(LOG_INTERVAL))  # ... and those redraw at most this often
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # huggingface_hub, transformers, datasets


class _Lines:
    """A file for tqdm that turns each in-place redraw (``\\r...``) into one ordinary line."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        for part in text.replace("\r", "\n").split("\n"):
            if part.strip():
                self.stream.write(part.rstrip() + "\n")

    def flush(self) -> None:
        self.stream.flush()


def bar(total: int, *, desc: str, unit: str = "step", initial: int = 0, disable: bool = False, stream=None):
    """A tqdm bar with a rate: redrawn in place in a terminal, a line every LOG_INTERVAL s in a log file."""
    from tqdm import tqdm

    stream = sys.stderr if stream is None else stream
    if interactive(stream):
        return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=disable, file=stream,
                    mininterval=1.0, dynamic_ncols=True)  # fmt: skip
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=disable, file=_Lines(stream),
                mininterval=LOG_INTERVAL, maxinterval=LOG_INTERVAL, ncols=100, ascii=True)  # fmt: skip
