"""Checkpoint naming and discovery: one owner for the folder names of every stage and for finding the latest
complete checkpoint (a checkpoint cut short by a kill is never trusted).

    <run>/checkpoints/step-N/          mid-training (its own format; complete when trainer_state/state.json is)
    <run>/checkpoints/checkpoint-N/    RL (TRL's folder name, which its resume requires; complete with trainer_state.json)
    <run>/final/                       the loadable result of a finished run (what the next stage and the study read)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from octo.manifest import is_complete

CHECKPOINTS = "checkpoints"
FINAL = "final"


@dataclass(frozen=True)
class CheckpointKind:
    prefix: str  # the folder is <prefix>-<step>
    marker: str  # a file inside the folder written last: its presence means the checkpoint is complete

    def name(self, step: int) -> str:
        return f"{self.prefix}-{step}"

    def step_of(self, path: str | Path) -> int | None:
        """The step a checkpoint folder is named after, or None when the name is not this kind's."""
        head, _, number = Path(path).name.partition("-")
        return int(number) if head == self.prefix and number.isdigit() else None


MIDTRAIN = CheckpointKind("step", "trainer_state/state.json")
TRL = CheckpointKind("checkpoint", "trainer_state.json")


def complete_checkpoints(folder: str | Path, kind: CheckpointKind) -> list[Path]:
    """The complete checkpoints of ``kind`` directly in ``folder``, oldest first (``.tmp`` and cut ones left out)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    steps = {p: kind.step_of(p) for p in folder.glob(f"{kind.prefix}-*")}
    complete = [p for p, step in steps.items() if step is not None and (p / kind.marker).is_file()]
    return sorted(complete, key=steps.__getitem__)


def latest_checkpoint(folder: str | Path, kind: CheckpointKind) -> Path | None:
    """The newest complete checkpoint of ``kind`` in ``folder``, or None."""
    found = complete_checkpoints(folder, kind)
    return found[-1] if found else None


def finished_final(run_dir: str | Path, config) -> Path | None:
    """The ``final/`` model of a run that finished with this config, or None: the manifest says complete for
    the same config hash and the folder holds a loadable model. A stage returns it at once instead of training."""
    final = Path(run_dir) / FINAL
    return final if is_complete(run_dir, config) and (final / "config.json").is_file() else None
