"""The import mapping: a typed YAML file that says how an external run's metrics become the project's.

    preset: verl                 # configs/imports/<preset>.yaml (or a path): its rules come after this file's
    format: wandb_csv            # auto | wandb_csv | wandb_history | verl | verl_console | trl
    metrics:                     # exact external key -> project field or val/<benchmark>/<acc|correct_len|...>
      "val-core/math500/acc/mean@1": val/math500/acc
    patterns:                    # regex (full match) -> target; {name} takes a named group of the regex
      - {match: 'val/test_score/(?P<bench>.+)', to: 'val/{bench}/acc'}
    runs:                        # run name (regex search) -> arm (first match wins; \\1 or \\g<name> allowed)
      - {match: 'qwen2\\.5-math-7b', arm: base}
    baseline: base               # the arm that is the base model (first row of the table)
    curve: val/math500           # what the verdict reads: accuracy | reward_mean | val/<benchmark> | any key
    validation_size: {math500: 500}   # items per validation point: the binomial SE of the noise test

External metrics that no rule maps are kept in the imported rows under their own names and listed in the
import report; nothing is dropped without being counted.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from octo.config import ConfigError, StrictModel, load_config
from octo.layout import RL_SUFFIX, parse_val_key, project_fields
from octo.manifest import PROJECT_ROOT

PRESETS_DIR = PROJECT_ROOT / "configs" / "imports"
_ARM = re.compile(r"^[\w.][\w.-]*$")


def _check_target(target: str) -> str:
    probe = re.sub(r"\{\w+\}", "x", target)
    if probe in project_fields() or parse_val_key(probe):
        return target
    allowed = ", ".join(sorted(project_fields()))
    raise ConfigError(f"unknown project field {target!r} (one of {allowed}, or val/<benchmark>/<acc|n|...>)")


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"not a valid regular expression: {exc}") from None
    return pattern


class PatternRule(StrictModel):
    match: str = Field(description="regular expression that must match the whole external key")
    to: str = Field(description="project field; {group} inserts a named group of the match")

    _regex = field_validator("match")(_check_regex)
    _target = field_validator("to")(_check_target)


class RunRule(StrictModel):
    match: str = Field(description="regular expression searched in the run name")
    arm: str | None = Field(None, description="arm name (groups allowed); null: do not import matching runs")

    _regex = field_validator("match")(_check_regex)


class ImportMapping(StrictModel):
    preset: str | None = Field(
        None, description="configs/imports/<name>.yaml or a path; merged under this file"
    )
    format: Literal["auto", "wandb_csv", "wandb_history", "verl", "verl_console", "trl"] = "auto"
    step: str | None = Field(None, description="the step column (default: Step, _step, step per format)")
    metrics: dict[str, str] = Field(default_factory=dict, description="external key -> project field")
    patterns: list[PatternRule] = Field(default_factory=list)
    strip_prefixes: list[str] = Field(
        default_factory=list, description="prefixes removed from external keys before matching (train/)"
    )
    runs: list[RunRule] = Field(default_factory=list, description="default: every run, arm = its name")
    baseline: str | None = None
    curve: str | None = Field(None, description="accuracy | reward_mean | val/<benchmark> | a metrics key")
    reward_range: tuple[float, float] | None = Field(
        None,
        description="[reward of a wrong answer, of a right one] when the reward is pure correctness: "
        "the training reward is then also written as training accuracy",
    )
    validation_size: dict[str, int] = Field(default_factory=dict, description="benchmark -> items per point")
    on_step_rewind: Literal["resume", "drop", "offset", "error"] = Field(
        "resume",
        description="a step at or below one already read: resume (later rows replace the rewound steps, "
        "as after a restart from a checkpoint), drop (W&B's rule: ignore it), offset (append after the "
        "last step), error",
    )
    eval_metric: list[str] = Field(
        default_factory=list, description="lighteval metric names to use as a task's score, in order"
    )

    @field_validator("metrics")
    @classmethod
    def _targets(cls, value: dict[str, str]) -> dict[str, str]:
        for key, target in value.items():
            try:
                _check_target(target)
            except ValueError as exc:
                raise ConfigError(f"{key!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _arms(self):
        for i, rule in enumerate(self.runs):
            if rule.arm and "\\" not in rule.arm and not _ARM.match(rule.arm):
                raise ConfigError(f"runs.{i}.arm: {rule.arm!r} is not a folder-safe arm name")
            if rule.arm and rule.arm.endswith(RL_SUFFIX):
                raise ConfigError(
                    f"runs.{i}.arm: arm names may not end in '{RL_SUFFIX}' (eval/<arm>-rl is after RL)"
                )
        return self


def _preset_path(name: str, base: Path | None) -> Path:
    for candidate in (Path(name), (base or Path(".")) / name, PRESETS_DIR / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")))
    raise ConfigError(f"preset {name!r}: no such file or preset (presets: {known})")


def merge(own: ImportMapping, preset: ImportMapping) -> ImportMapping:
    """``own`` over ``preset``: exact keys and explicit fields win; rule lists are own first, then the preset's."""
    data = preset.model_dump()
    for field in own.model_fields_set - {"preset"}:
        data[field] = getattr(own, field)
    data["metrics"] = {**preset.metrics, **own.metrics}
    data["patterns"] = [r.model_dump() for r in own.patterns + preset.patterns]
    data["strip_prefixes"] = list(dict.fromkeys(own.strip_prefixes + preset.strip_prefixes))
    data["runs"] = [r.model_dump() for r in own.runs + preset.runs]
    data["validation_size"] = {**preset.validation_size, **own.validation_size}
    data["preset"] = None
    return ImportMapping.model_validate(data)


def load_mapping(path: str | Path | None = None, preset: str | None = None, overrides=()) -> ImportMapping:
    """The mapping file (typed, with dotted overrides) merged over its preset; or a preset alone."""
    if path is None and preset is None:
        raise ConfigError("give a mapping file (--mapping) or a preset (--preset verl|trl)")
    if path is not None:
        mapping = load_config(path, ImportMapping, overrides)
        base = Path(path).parent
    else:
        mapping = load_config(_preset_path(preset, None), ImportMapping, overrides)
        base = None
    chain = {str(path)}
    while mapping.preset:
        preset_file = _preset_path(mapping.preset, base)
        if str(preset_file) in chain:
            raise ConfigError(f"{preset_file}: presets refer to each other in a loop")
        chain.add(str(preset_file))
        mapping = merge(mapping, load_config(preset_file, ImportMapping))
    return mapping


class Mapper:
    """Applies a mapping to external keys (memoised: a 50 MB export has few distinct keys)."""

    def __init__(self, mapping: ImportMapping):
        self.mapping = mapping
        self.patterns = [(re.compile(r.match), r.to) for r in mapping.patterns]
        self._cache: dict[str, tuple[str, bool]] = {}

    def key(self, external: str) -> tuple[str, bool]:
        """(project key, mapped?) of an external metric key; unmapped keys keep their own name."""
        hit = self._cache.get(external)
        if hit is None:
            hit = self._cache[external] = self._resolve(external)
        return hit

    def _resolve(self, external: str) -> tuple[str, bool]:
        if external in self.mapping.metrics:
            return self.mapping.metrics[external], True
        key = external
        for prefix in self.mapping.strip_prefixes:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        if key in self.mapping.metrics:
            return self.mapping.metrics[key], True
        for regex, target in self.patterns:
            match = regex.fullmatch(key)
            if match:
                return target.format(**match.groupdict()), True
        return external, False

    def arm(self, run: str) -> str | None:
        """The arm of a run name (rules first; default: the run name made folder-safe)."""
        for rule in self.mapping.runs:
            match = re.search(rule.match, run)
            if match:
                return safe_arm(match.expand(rule.arm)) if rule.arm else None
        return safe_arm(run)


def safe_arm(name: str) -> str:
    """A folder name for a run: unicode letters kept, separators replaced, long names shortened with a hash."""
    cleaned = re.sub(r"[^\w.-]+", "_", name.strip()).strip("._") or "run"
    if cleaned.endswith(RL_SUFFIX):
        cleaned = cleaned[: -len(RL_SUFFIX)] + "_rl"
    if len(cleaned) > 64:
        cleaned = cleaned[:55] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return cleaned
