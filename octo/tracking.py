"""Experiment tracking: one ``tracking:`` config section, shared by mid-training, RL and the study.

A stage logs each ``metrics.jsonl`` row it writes to the configured trackers under the same names (the
row's ``step`` is the tracker step; text fields and nulls are left out, since trackers plot numbers), and the
resolved config as the run's config. Backends:

* ``trackio`` (the default when tracking is on): local-first, one SQLite file per project in trackio's own
  folder (``$TRACKIO_DIR``, default ``~/.cache/huggingface/trackio``, where ``trackio show`` looks; trackio
  reads it once per process, and TRL imports trackio, so it is set through the environment). No Space, no
  upload: ``TRACKIO_SPACE_ID``/``TRACKIO_SERVER_URL`` are ignored.
* ``tensorboard``: event files under ``<dir>/<project>/<run name>`` (default dir: ``<output_dir>/tensorboard``).
* ``wandb``: offline mode (files under ``<dir>/wandb``) unless ``wandb_mode: online`` is written.

Tracking is off unless configured. It never changes what a run computes, so the section is left out of the
dumped config and its hash: turning tracking on does not re-run a finished stage. TRL's own loggers stay off
(``report_to="none"``): the rows logged here already hold TRL's update statistics under the names of
``metrics.jsonl``, and a second logger would log them again under other names.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from octo.config import ConfigError, StrictModel

Backend = Literal["trackio", "tensorboard", "wandb"]


class TrackingConfig(StrictModel):
    """Where a run's metrics go besides ``metrics.jsonl``. Off unless ``enabled: true``."""

    enabled: bool = Field(False, description="log metrics and config to the backends below")
    backends: list[Backend] = Field(
        default_factory=lambda: ["trackio"], min_length=1, description="trackio, tensorboard, wandb"
    )
    project: str | None = Field(None, description="project name (default: the study's name, else 'octo-lab')")
    run_name: str | None = Field(
        None, description="default: the stage's name (the study sets '<arm>/<stage>')"
    )
    dir: str | None = Field(
        None,
        description="where TensorBoard and W&B write (default: <output_dir>/tensorboard, <output_dir>/wandb); "
        "trackio writes to $TRACKIO_DIR",
    )
    wandb_mode: Literal["offline", "online"] = Field(
        "offline", description="W&B reaches its server only with 'online'"
    )


def numeric(row: dict[str, Any]) -> dict[str, float]:
    """The loggable part of a metrics row: finite numbers under their own names (``step`` is the x axis)."""
    out = {}
    for key, value in row.items():
        if key == "step" or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[key] = value
    return out


class Tracker:
    """The configured backends of one run; ``log(row)`` sends a metrics row to all of them."""

    def __init__(self, sinks: list):
        self.sinks = sinks

    def log(self, row: dict[str, Any], step: int | None = None) -> None:
        values = numeric(row)
        step = int(row["step"] if step is None else step)
        if values:
            for sink in self.sinks:
                sink.log(values, step)

    def finish(self) -> None:
        for sink in self.sinks:
            sink.finish()
        self.sinks = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.finish()


def start(
    cfg: TrackingConfig | None,
    *,
    run_name: str,
    config: Any,
    output_dir: str | Path,
    resume_step: int | None = None,
) -> Tracker:
    """Open the trackers of one run (an empty Tracker when tracking is off). ``config``: the resolved config.

    ``resume_step``: the run continues from this step; rows logged after it are logged again (TensorBoard
    drops its older events past that step, trackio and W&B keep both)."""
    if cfg is None or not cfg.enabled:
        return Tracker([])
    data = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)
    project = cfg.project or "octo-lab"
    name = cfg.run_name or run_name
    out = Path(output_dir)
    sinks = []
    for backend in dict.fromkeys(cfg.backends):
        opener = {"trackio": _TrackioSink, "tensorboard": _TensorBoardSink, "wandb": _WandbSink}[backend]
        sinks.append(opener(cfg, project, name, data, out, resume_step))
    return Tracker(sinks)


def _missing(backend: str, package: str) -> ConfigError:
    return ConfigError(
        f"tracking.backends: '{backend}' needs the '{package}' package (pip install 'octo-lab[tracking]')"
    )


class _TrackioSink:
    def __init__(self, cfg: TrackingConfig, project, name, config, out, resume_step):
        for var in ("TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL"):  # local only: never a Space or a server
            os.environ.pop(var, None)
        try:
            import trackio
        except ImportError:
            raise _missing("trackio", "trackio") from None
        self.trackio = trackio
        self.run = trackio.init(
            project=project,
            name=name,
            config=config,
            resume="allow",
            embed=False,
            auto_log_gpu=False,
            auto_log_cpu=False,
        )

    def log(self, values, step):
        self.run.log(values, step=step)

    def finish(self):
        self.run.finish()


class _TensorBoardSink:
    def __init__(self, cfg: TrackingConfig, project, name, config, out, resume_step):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("tensorboard", "tensorboard") from None
        import yaml

        root = Path(cfg.dir) if cfg.dir else out / "tensorboard"
        self.log_dir = root / project / name
        self.writer = SummaryWriter(str(self.log_dir), purge_step=resume_step)
        text = yaml.safe_dump(config, sort_keys=False)
        self.writer.add_text("config", "```yaml\n" + text + "```", global_step=resume_step or 0)

    def log(self, values, step):
        for key, value in values.items():
            self.writer.add_scalar(key, value, global_step=step)

    def finish(self):
        self.writer.close()


class _WandbSink:
    def __init__(self, cfg: TrackingConfig, project, name, config, out, resume_step):
        try:
            import wandb
        except ImportError:
            raise _missing("wandb", "wandb") from None
        root = Path(cfg.dir) if cfg.dir else out
        root.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=project,
            name=name,
            config=config,
            dir=str(root),
            mode=cfg.wandb_mode,
            resume="allow",
            id=_wandb_id(project, name),
        )

    def log(self, values, step):
        self.run.log(values, step=step)

    def finish(self):
        self.run.finish()


def _wandb_id(project: str, name: str) -> str:
    """A stable run id, so a resumed run continues its W&B run instead of opening another."""
    import hashlib

    return hashlib.sha1(f"{project}/{name}".encode()).hexdigest()[:16]
