"""Readers of external run logs. Each streams ``Record``s (run, step, {key: value}, where) and counts every
cell it cannot use in a ``Skips`` (empty, NaN/inf, not a number, a row without a step, ragged rows), so the
import report accounts for all of the input. Files are read line by line: memory does not grow with size.

Formats (what each tool writes; read, never executed):

- ``wandb_csv``: the W&B UI's chart export: a first column ``Step``, then ``"<run> - <metric>"`` columns
  (optionally ``__MIN``/``__MAX`` companions); several runs and metrics per file; empty where not logged.
- ``wandb_history``: a run history exported through the W&B public API (``run.scan_history()`` as JSONL, or
  ``run.history()`` as CSV): one row per logged step, ``_step`` column. One run per file.
- ``verl``: veRL's ``file`` logger (``verl/utils/tracking.py``): JSONL lines ``{"step": N, "data": {...}}``.
- ``verl_console``: veRL's console lines ``step:N - key:value - key:value`` (also with a Ray prefix).
- ``trl``: a TRL/transformers ``trainer_state.json``; its ``log_history`` entries carry ``step``.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from octo.checkpoints import TRL
from octo.errors import InputError
from octo.jsonl import numbered_rows, read_json

FORMATS = ("auto", "wandb_csv", "wandb_history", "verl", "verl_console", "trl")
COMPANIONS = ("__MIN", "__MAX")
STEP_KEYS = ("_step", "step", "train/global_step", "global_step")  # the mapping's ``step:`` is tried first
_CONSOLE = re.compile(r"(?:^|\s)step:(?P<step>-?\d+(?:\.\d+)?)(?P<rest>(?: - .*)?)$")
_WRAPPED = re.compile(r"^(?:np\.\w+|numpy\.\w+|tensor|array)\(\s*(?P<x>[^,()]+?)\s*[,)]")


@dataclass
class Record:
    run: str
    step: float
    values: dict[str, float]
    where: str


@dataclass
class Skips:
    """Cells read but not imported, by reason and run; ``examples`` keeps the first few places."""

    cells: Counter = field(default_factory=Counter)  # (run, reason) -> count
    examples: list[str] = field(default_factory=list)

    def add(self, run: str, reason: str, where: str, n: int = 1) -> None:
        self.cells[run, reason] += n
        if len(self.examples) < 20:
            self.examples.append(f"{where}: {reason}")

    def total(self) -> int:
        return sum(self.cells.values())


def number(value) -> tuple[float | None, str | None]:
    """(value, None) for a finite number, else (None, reason). Strings such as ``0.5``, ``NaN`` and veRL's
    console forms ``np.float64(0.5)`` / ``tensor(0.5, device='cuda:0')`` are read too."""
    if isinstance(value, bool):
        return None, "not a number"
    if value is None:
        return None, "empty"
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None, "empty"
        try:
            value = float(text)
        except ValueError:
            wrapped = _WRAPPED.match(text)
            try:
                value = float(wrapped["x"]) if wrapped else None
            except ValueError:
                value = None
            if value is None:
                return None, "not a number"
    if isinstance(value, (int, float)):
        return (float(value), None) if math.isfinite(value) else (None, "NaN or infinite")
    return None, "not a number"


def _values(items, run: str, where: str, skips: Skips, drop: set[str]) -> dict[str, float]:
    out = {}
    for key, raw in items:
        if key in drop:
            continue
        value, reason = number(raw)
        if reason:
            skips.add(run, reason, f"{where} {key!r}")
        else:
            out[key] = value
    return out


# ------------------------------------------------------------------------------------------------ W&B CSV
def split_column(name: str) -> tuple[str, str, str] | None:
    """(run, metric, companion) of a W&B export column ``<run> - <metric>[__MIN|__MAX]``.

    The run name may itself contain `` - ``: metric keys never do, so the split is at the last one."""
    companion = ""
    for suffix in COMPANIONS:
        if name.endswith(suffix):
            name, companion = name[: -len(suffix)], suffix
    if " - " not in name:
        return None
    run, metric = name.rsplit(" - ", 1)
    return run, metric, companion


def read_wandb_csv(path: Path, skips: Skips, step_column: str | None = None) -> Iterator[Record]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise InputError(f"{path}: empty file (a W&B CSV export starts with a 'Step' header)")
        step_at = header.index(step_column) if step_column in header else 0
        columns = []
        for i, name in enumerate(header):
            if i == step_at:
                continue
            parsed = split_column(name)
            if parsed is None:
                raise InputError(
                    f"{path}:1: column {i + 1} {name!r} is not '<run name> - <metric>' (a W&B chart export)"
                )
            run, metric, companion = parsed
            columns.append((i, run, metric + companion))
        for lineno, cells in enumerate(reader, 2):
            if not cells:
                continue
            where = f"{path.name}:{lineno}"
            if len(cells) > len(header):
                skips.add("(file)", "extra cells beyond the header", where, len(cells) - len(header))
            step, reason = number(cells[step_at] if step_at < len(cells) else "")
            if reason:
                skips.add("(file)", f"row without a step ({reason}): its cells", where, len(columns))
                continue
            by_run: dict[str, dict[str, float]] = {}
            width = len(cells)
            for i, run, metric in columns:
                if i >= width:
                    skips.add(run, "missing (short row)", where)
                    continue
                try:  # the common case first: a plain finite number (x - x is 0 only for finite x)
                    value = float(cells[i])
                    reason = None if value - value == 0 else "NaN or infinite"
                except ValueError:
                    value, reason = number(cells[i])
                if reason:
                    skips.add(run, reason, f"{where} column {i + 1}")
                    continue
                by_run.setdefault(run, {})[metric] = value
            for run, values in by_run.items():
                yield Record(run, step, values, where)


# ------------------------------------------------------------------------------------------- row-per-step
def read_history_jsonl(path: Path, run: str, skips: Skips, step_key: str | None) -> Iterator[Record]:
    keys = ((step_key,) if step_key else ()) + STEP_KEYS
    for lineno, row in numbered_rows(path):
        yield from _row_record(row, run, keys, f"{path.name}:{lineno}", skips)


def _row_record(row: dict, run: str, keys, where: str, skips: Skips) -> Iterator[Record]:
    key = next((k for k in keys if k in row), None)
    step, reason = number(row.get(key)) if key else (None, "no step column")
    if reason:
        skips.add(run, f"row without a step ({reason}): its cells", where, max(1, len(row) - 1))
        return
    values = _values(row.items(), run, where, skips, drop={key})
    if values:
        yield Record(run, step, values, where)


def read_history_csv(path: Path, run: str, skips: Skips, step_key: str | None) -> Iterator[Record]:
    keys = ((step_key,) if step_key else ()) + STEP_KEYS
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None) or []
        if not any(k in header for k in keys):
            raise InputError(f"{path}:1: no step column (expected one of {', '.join(keys)})")
        for lineno, cells in enumerate(reader, 2):
            if not cells:
                continue
            where = f"{path.name}:{lineno}"
            if len(cells) != len(header):
                skips.add(
                    run,
                    "ragged row (cells beyond or short of the header)",
                    where,
                    abs(len(cells) - len(header)),
                )
            yield from _row_record(dict(zip(header, cells)), run, keys, where, skips)


def read_verl_jsonl(path: Path, run: str, skips: Skips) -> Iterator[Record]:
    """veRL's ``file`` logger: one ``{"step": N, "data": {...}}`` line per step."""
    for lineno, row in numbered_rows(path):
        where = f"{path.name}:{lineno}"
        if not isinstance(row.get("data"), dict):
            raise InputError(
                f"{path}:{lineno}: expected veRL's file-logger line {{'step': N, 'data': {{...}}}}"
            )
        step, reason = number(row.get("step"))
        if reason:
            skips.add(run, f"row without a step ({reason}): its cells", where, len(row["data"]))
            continue
        values = _values(row["data"].items(), run, where, skips, drop=set())
        if values:
            yield Record(run, step, values, where)


def read_verl_console(path: Path, run: str, skips: Skips) -> Iterator[Record]:
    """veRL console lines ``step:N - key:value - ...``; other lines (progress bars, warnings) are passed over."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            match = _CONSOLE.search(line.rstrip("\n"))
            if not match:
                continue
            where = f"{path.name}:{lineno}"
            items = []
            for part in match["rest"].split(" - ")[1:]:
                key, sep, value = part.rpartition(":")
                if not sep or not key:
                    skips.add(run, "not key:value", where)
                    continue
                items.append((key.strip(), value))
            values = _values(items, run, where, skips, drop=set())
            if values:
                yield Record(run, float(match["step"]), values, where)


def read_trainer_state(path: Path, run: str, skips: Skips) -> Iterator[Record]:
    state = read_json(path)
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise InputError(f"{path}: no 'log_history' list (expected a transformers/TRL trainer_state.json)")
    for i, entry in enumerate(history):
        where = f"{path.name} log_history[{i}]"
        if not isinstance(entry, dict):
            skips.add(run, "log_history entry is not an object", where)
            continue
        yield from _row_record(entry, run, ("step",), where, skips)


def sniff(path: Path) -> str:
    """The format of a file, from its name and first line."""
    if path.name.endswith("trainer_state.json"):
        return "trl"
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
    text = first.strip()
    if path.suffix == ".json" and text.startswith("{") and '"log_history"' not in first:
        head = path.read_text(encoding="utf-8", errors="replace")[:20000]
        if '"log_history"' in head:
            return "trl"
        if '"config_general"' in head or '"results"' in head:
            return "lighteval"
    if text.startswith("{"):
        return "verl" if '"data"' in text and '"step"' in text else "wandb_history"
    if _CONSOLE.search(text) or path.suffix in (".log", ".txt", ".out"):
        return "verl_console"
    if path.suffix == ".csv":
        first_cells = next(csv.reader([text]), [])
        return "wandb_csv" if any(" - " in c for c in first_cells[1:]) else "wandb_history"
    raise InputError(f"{path}: cannot tell the format (give --format)")


def run_name(path: Path, fmt: str) -> str:
    """The run name of a one-run file: trainer_state.json -> its output folder; otherwise the file stem."""
    if fmt == "trl":
        folder = path.parent
        if TRL.step_of(folder) is not None:
            folder = folder.parent
        return folder.name or path.stem
    return path.stem
