"""Typed YAML configs: load, interpolate, override, validate.

A config file is the whole recipe. YAML is read with OmegaConf (``${a.b}`` references to other keys of the
same file, ``${oc.env:VAR,default}`` for the environment), command-line overrides are dotted
``key.sub=value`` strings, and the result is validated by a pydantic model that rejects unknown keys and
wrong types. Errors name the file, the dotted field and, where the field comes from the file, its line.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ConfigDict, ValidationError

from octo.errors import ConfigError

__all__ = [
    "ConfigError",
    "StrictModel",
    "load_config",
    "parse_config",
    "load_raw",
    "dump_config",
    "key_lines",
    "parse_with_overrides",
]


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, values are re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


M = TypeVar("M", bound=BaseModel)


def key_lines(path: Path) -> dict[str, int]:
    """Map each dotted key of a YAML file to its 1-based line, for error messages."""
    try:
        root = yaml.compose(path.read_text())
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                dotted = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                lines[dotted] = key_node.start_mark.line + 1
                walk(value_node, dotted)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                dotted = f"{prefix}.{i}"
                lines[dotted] = item.start_mark.line + 1
                walk(item, dotted)

    walk(root, "")
    return lines


def load_raw(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a YAML file, apply dotted overrides and resolve ``${...}`` references into a plain dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        conf = OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if conf is None or not OmegaConf.is_dict(conf):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise ConfigError(f"override {item!r}: expected key.sub=value")
    for item in overrides:
        key, _, text = item.partition("=")
        try:  # OmegaConf.update reaches list items too (sources.0.size=100)
            OmegaConf.update(conf, key.strip(), yaml.safe_load(text) if text.strip() else None, merge=True)
        except (yaml.YAMLError, OmegaConfBaseException) as exc:
            raise ConfigError(f"{path}: override {item!r}: {exc}") from exc
    try:
        return OmegaConf.to_container(conf, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        where = f" field '{key}'" if key else ""
        raise ConfigError(f"{path}:{where} {exc.msg if hasattr(exc, 'msg') else exc}") from exc


def parse_config(
    data: dict[str, Any], model: type[M], *, source: str = "<config>", lines: dict | None = None, overrides=()
) -> M:
    """Validate a plain dict against ``model``; errors name ``source`` and every bad dotted field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        overridden = {item.split("=", 1)[0] for item in overrides}
        problems = []
        for err in exc.errors():
            dotted = ".".join(str(p) for p in err["loc"])
            if dotted in overridden:
                where = "(from a command-line override)"
            elif lines and dotted in lines:
                where = f"(line {lines[dotted]})"
            else:
                where = ""
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; allowed keys are the model's fields)"
            got = "" if err["type"] in ("missing", "extra_forbidden") else f" (got {err.get('input')!r:.80})"
            problems.append(f"  {dotted or '<top>'} {where}: {msg}{got}".replace("  ", " ", 1))
        raise ConfigError(f"{source}: invalid config\n" + "\n".join(problems)) from None


def load_config(path: str | Path, model: type[M], overrides: list[str] | tuple[str, ...] = ()) -> M:
    """Load ``path`` (YAML), apply ``key.sub=value`` overrides and validate into ``model``."""
    path = Path(path)
    data = load_raw(path, overrides)
    return parse_config(data, model, source=str(path), lines=key_lines(path), overrides=overrides)


def dump_config(config: BaseModel, path: str | Path) -> Path:
    """Write the resolved config as YAML (the form that went into a run)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return path


def parse_with_overrides(
    parser: argparse.ArgumentParser, argv: list[str]
) -> tuple[argparse.Namespace, list[str]]:
    """Parse a command line whose ``key.sub=value`` overrides may stand before or after the options.

    Returns the parsed arguments and every override, in order: those argparse gave to an ``overrides``
    positional, then the ``=`` words it left over. Any other word left over is a usage error (exit 2).
    """
    args, rest = parser.parse_known_args(argv)
    stray = [w for w in rest if "=" not in w or w.startswith("-")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    return args, [*(getattr(args, "overrides", None) or []), *rest]
