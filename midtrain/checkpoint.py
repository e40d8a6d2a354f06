"""Checkpoints: ``checkpoints/step-N/`` is a loadable HF folder plus ``trainer_state/`` (optimizer, RNG, position).

A checkpoint is written to ``step-N.tmp`` and renamed when complete, so a run killed while saving never leaves
a half checkpoint that a restart would trust.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from octo.checkpoints import CHECKPOINTS, MIDTRAIN, complete_checkpoints
from octo.checkpoints import latest_checkpoint as octo_latest_checkpoint
from octo.jsonl import read_jsonl

STATE = "trainer_state"


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (naming and discovery: octo.checkpoints)."""
    return complete_checkpoints(checkpoints_dir(run_dir), MIDTRAIN)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    return octo_latest_checkpoint(checkpoints_dir(run_dir), MIDTRAIN)


def read_state(ckpt: Path) -> dict:
    return json.loads((ckpt / STATE / "state.json").read_text())


def find_branch_checkpoint(run_dir: Path, at_step: int | None) -> Path | None:
    """The checkpoint a branch starts from: the one at ``at_step``, or the last one."""
    found = list_checkpoints(run_dir)
    if at_step is None:
        return found[-1] if found else None
    wanted = checkpoints_dir(run_dir) / MIDTRAIN.name(at_step)
    return wanted if wanted in found else None


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, step: int, *, model, tokenizer, optimizer, state: dict, keep: int) -> Path:
    """Write ``checkpoints/step-<step>`` atomically and drop all but the ``keep`` most recent."""
    root = checkpoints_dir(run_dir)
    final = root / MIDTRAIN.name(step)
    tmp = root / f"{MIDTRAIN.name(step)}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / STATE).mkdir(parents=True)
    torch.save(optimizer.state_dict(), tmp / STATE / "optimizer.pt")
    torch.save(rng_state(), tmp / STATE / "rng.pt")
    (tmp / STATE / "state.json").write_text(json.dumps(state, indent=1) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(ckpt: Path) -> tuple[dict, dict, dict]:
    """(state.json, optimizer state dict, RNG state) of a checkpoint."""
    optim = torch.load(ckpt / STATE / "optimizer.pt", map_location="cpu", weights_only=False)
    rng = torch.load(ckpt / STATE / "rng.pt", map_location="cpu", weights_only=False)
    return read_state(ckpt), optim, rng


def clean_partial(run_dir: Path) -> None:
    """Remove ``*.tmp`` checkpoints left by a run killed while saving."""
    for tmp in checkpoints_dir(run_dir).glob(f"{MIDTRAIN.prefix}-*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def rows_until(metrics_path: Path, step: int) -> list[dict]:
    """The metrics rows a resumed run keeps: those up to the checkpoint it starts from. A killed run may have
    logged further, and its last row may be cut short (tolerated; any other bad line is an error)."""
    if not metrics_path.is_file():
        return []
    return [r for r in read_jsonl(metrics_path, torn_tail=True) if r["step"] <= step]
