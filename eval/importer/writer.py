"""One imported arm's ``rl/<arm>/metrics.jsonl``, written as records stream in (bounded memory).

Rows of the same step are merged (a later value of the same key replaces the earlier one and is counted).
A step at or below one already written is a rewind, handled by the mapping's ``on_step_rewind``:
``resume`` truncates the file back to that step (the resumed segment replaces what it re-ran), ``drop``
ignores the late rows (W&B's own rule), ``offset`` appends them after the last step, ``error`` stops.
Nothing is kept per row: a rewind (rare) finds its cut by reading the file back, so memory stays flat.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from octo.errors import InputError
from octo.layout import val_key

from .mapping import Mapper
from .readers import Record


class ArmWriter:
    def __init__(self, arm: str, path: Path, mapper: Mapper):
        self.arm, self.path, self.mapper = arm, path, mapper
        self.policy = mapper.mapping.on_step_rewind
        self.reward_range, self.validation_size = mapper.mapping.reward_range, mapper.mapping.validation_size
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(path.name + ".import-tmp")
        self.fh = self.tmp.open("w+b")
        self.rows, self.first_step, self.last_step = 0, None, None
        self.pending: dict | None = None
        self.shift = 0.0
        self.events: Counter = Counter()  # rewinds, rows superseded, values replaced, ...
        self.rewinds: list[str] = []
        self.mapped: dict[str, str] = {}  # external key -> project key
        self.unmapped: set[str] = set()
        self.runs: set[str] = set()
        self._keys: dict[str, str] = {}
        self._moved = False

    # ------------------------------------------------------------------ input
    def add(self, record: Record) -> None:
        self.runs.add(record.run)
        keys = self._keys
        values = {}
        for external, value in record.values.items():
            key = keys.get(external)
            if key is None:
                key = keys[external] = self._key(external)
            values[key] = value
        step = record.step + self.shift
        last = self.pending["step"] if self.pending else self.last_step
        if self.pending is not None and step == last:
            for key, value in values.items():
                if key in self.pending and self.pending[key] != value:
                    self.events["values replaced by a later row of the same step"] += 1
                self.pending[key] = value
            return
        if last is not None and step < last:
            step = self._rewind(record, step, last)
            if step is None:
                return
        self._flush()
        self.pending = {"step": int(step) if float(step).is_integer() else step, **values}

    def _key(self, external: str) -> str:
        """The project key of an external one (``__MIN``/``__MAX`` companions follow their metric)."""
        base, companion = external, ""
        if external.endswith(("__MIN", "__MAX")):
            base, companion = external[:-5], external[-5:].lower()
        key, mapped = self.mapper.key(base)
        if mapped:
            self.mapped[base] = key
        else:
            self.unmapped.add(base)
        return key + companion

    def _rewind(self, record: Record, step: float, last: float) -> float | None:
        self.events["step rewinds"] += 1
        note = f"{record.where}: step {record.step:g} after step {last - self.shift:g}"
        if self.policy == "error":
            raise InputError(f"{note} (on_step_rewind: error; use resume, drop or offset)")
        if self.policy == "drop":
            self.events["rows dropped (step not above the last)"] += 1
            if len(self.rewinds) < 10:
                self.rewinds.append(note + ": row dropped")
            return None
        if self.policy == "offset":
            self.shift += last + 1 - step
            if len(self.rewinds) < 10:
                self.rewinds.append(note + f": steps shifted by {self.shift:g}")
            return record.step + self.shift
        self._flush()  # resume: the new segment replaces every written step >= this one
        superseded = self._cut(step)
        self.events["rows superseded by a resumed segment"] += superseded
        if len(self.rewinds) < 10:
            self.rewinds.append(note + f": resumed, {superseded} earlier rows replaced")
        return step

    def _cut(self, step: float) -> int:
        """Truncate the file before the first row whose step is >= ``step``; returns the rows removed."""
        self.fh.seek(0)
        self._moved = True
        position, kept, last = 0, 0, None
        for line in iter(self.fh.readline, b""):
            row_step = json.loads(line)["step"]
            if row_step >= step:
                break
            position, kept, last = position + len(line), kept + 1, row_step
        removed = self.rows - kept
        self.fh.seek(position)
        self.fh.truncate()
        self.rows, self.last_step = kept, last
        if kept == 0:
            self.first_step = None
        return removed

    def _flush(self) -> None:
        if self.pending is None:
            return
        if self.reward_range or self.validation_size:
            derive(self.pending, self.reward_range, self.validation_size)
        if self._moved:  # only after a rewind read the file back
            self.fh.seek(0, os.SEEK_END)
            self._moved = False
        self.rows += 1
        self.last_step = self.pending["step"]
        if self.first_step is None:
            self.first_step = self.last_step
        self.fh.write((json.dumps(self.pending, ensure_ascii=False) + "\n").encode())
        self.pending = None

    # ------------------------------------------------------------------ output
    def close(self) -> int:
        """Finish the file; returns the rows written."""
        self._flush()
        self.fh.close()
        os.replace(self.tmp, self.path)
        return self.rows

    def abort(self) -> None:
        self.fh.close()
        self.tmp.unlink(missing_ok=True)


def derive(row: dict, reward_range, validation_size: dict) -> None:
    """Fields the mapping implies: accuracy from a correctness reward, validation set sizes."""
    if reward_range and "accuracy" not in row and isinstance(row.get("reward_mean"), (int, float)):
        lo, hi = reward_range
        row["accuracy"] = min(1.0, max(0.0, (row["reward_mean"] - lo) / (hi - lo)))
    for bench, n in validation_size.items():
        if val_key(bench) in row and val_key(bench, "n") not in row:
            row[val_key(bench, "n")] = n
