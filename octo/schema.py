"""Field references generated from the stages' config models, so they cannot drift from the code.

``octo <stage> schema`` prints one stage's recipe fields (dotted name, type, default, description), the
names ``key.sub=value`` overrides use. ``octo docs`` (or ``python -m octo.schema``) writes the same tables
to ``docs/reference/<stage>.md``; ``octo docs --check`` (and ``tests/test_docs.py``) fails when those files
are stale.

The walk follows the pydantic models: a nested section adds ``section.``, a list of sections ``[]``, a
mapping of names to sections ``.<name>``; a union of sections told apart by a literal field (the corpus
sources' ``type``) lists the fields every variant shares once and each variant's own fields with
``(type=jsonl)``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = ["STAGE_MODELS", "Row", "rows", "render_text", "render_markdown", "stage_model", "write_docs"]

# stage command -> "module:Class" of the model its YAML is validated into (the one owner of this mapping)
STAGE_MODELS: dict[str, str] = {
    "corpus": "pipelines.recipe:CorpusRecipe",
    "midtrain": "midtrain.config:MidtrainConfig",
    "rl": "rl.config:RLConfig",
    "eval": "eval.config:SuiteConfig",
    "study": "study.config:StudyConfig",
    "readiness": "eval.readiness:ReadinessOptions",
    "probe": "rl.probe_config:ProbeConfig",
}
# what each model validates, for the generated page's introduction
STAGE_CONFIGS: dict[str, str] = {
    "corpus": "`configs/corpus/*.yaml`",
    "midtrain": "`configs/midtrain/*.yaml`",
    "rl": "`configs/rl/*.yaml`",
    "eval": "`configs/eval/*.yaml`",
    "study": "`configs/studies/*.yaml`",
    "readiness": "the options of `octo readiness` and a study's `readiness:` mapping",
    "probe": "the options of `octo probe` (key=value words) and a study's `probe.overrides`",
}
DOCS_DIR = Path(__file__).resolve().parent.parent / "docs" / "reference"


@dataclass(frozen=True)
class Row:
    """One field of a recipe: its dotted name, type, default and description."""

    name: str
    type: str
    default: str
    description: str


def stage_model(stage: str) -> type[BaseModel]:
    """The config model class of a stage command (``corpus``, ``midtrain``, ``rl``, ``eval``, ``study``)."""
    if stage not in STAGE_MODELS:
        raise KeyError(f"unknown stage '{stage}' (known: {', '.join(STAGE_MODELS)})")
    module, _, name = STAGE_MODELS[stage].partition(":")
    return getattr(importlib.import_module(module), name)


# ------------------------------------------------------------------------------------------ types
def _args(annotation) -> tuple:
    return typing.get_args(annotation)


def _is_union(annotation) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _is_model(annotation) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _strip_annotated(annotation):
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = _args(annotation)[0]
    return annotation


def type_name(annotation) -> str:
    """A short readable name for a field's type: ``int | None``, ``list[str]``, ``'qa' | 'orz'``."""
    annotation = _strip_annotated(annotation)
    if annotation is type(None):
        return "None"
    if annotation is typing.Any:
        return "Any"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) if isinstance(a, str) else repr(a) for a in _args(annotation))
    if _is_union(annotation):
        return " | ".join(type_name(a) for a in _args(annotation))
    if origin in (list, tuple, set, frozenset, dict):
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in _args(annotation))
        return f"{origin.__name__}[{inner}]" if inner else origin.__name__
    return getattr(annotation, "__name__", str(annotation))


_BOUNDS = ((annotated_types.Gt, ">", "gt"), (annotated_types.Ge, ">=", "ge"))
_BOUNDS += ((annotated_types.Lt, "<", "lt"), (annotated_types.Le, "<=", "le"))


def _constraints(info: FieldInfo) -> str:
    out = []
    for meta in info.metadata:
        out += [f"{sign} {getattr(meta, attr)}" for kind, sign, attr in _BOUNDS if isinstance(meta, kind)]
        if isinstance(meta, annotated_types.MinLen):
            out.append(f"at least {meta.min_length} item{'s' if meta.min_length != 1 else ''}")
    return ", ".join(out)


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if isinstance(value, BaseModel):
        return "(section)"
    try:
        return json.dumps(value, ensure_ascii=False)
    except TypeError:
        return repr(value)


# ------------------------------------------------------------------------------------------ the walk
def _models_in(annotation) -> tuple[str, list[type[BaseModel]]]:
    """(suffix, section models) of a field: '' for a section, '[]' for a list of them, '.<name>' for a map."""
    annotation = _strip_annotated(annotation)
    if _is_model(annotation):
        return "", [annotation]
    origin = typing.get_origin(annotation)
    if _is_union(annotation):
        parts = [a for a in _args(annotation) if a is not type(None)]
        models = [_strip_annotated(a) for a in parts]
        if models and all(_is_model(m) for m in models):
            return "", models
        if len(parts) == 1:
            return _models_in(parts[0])
        return "", []
    if origin in (list, tuple) and _args(annotation):
        suffix, models = _models_in(_args(annotation)[0])
        return "[]" + suffix, models
    if origin is dict and len(_args(annotation)) == 2:
        suffix, models = _models_in(_args(annotation)[1])
        return ".<name>" + suffix, models
    return "", []


def _discriminator(models: list[type[BaseModel]]) -> str | None:
    """The literal field whose values tell the variants of a union apart (``type`` for corpus sources)."""
    for name in models[0].model_fields:
        values = [set(_args(m.model_fields[name].annotation)) for m in models if name in m.model_fields]
        literal = all(
            typing.get_origin(m.model_fields[name].annotation) is typing.Literal
            for m in models
            if name in m.model_fields
        )
        if literal and len(values) == len(models) and len(set().union(*values)) == sum(map(len, values)):
            return name
    return None


def _same(a: FieldInfo, b: FieldInfo | None) -> bool:
    """Two variants declare the field alike (the base class's fields, inherited by every variant)."""
    return b is not None and (a.annotation, a.description, _default(a)) == (
        b.annotation,
        b.description,
        _default(b),
    )


def _field_row(name: str, info: FieldInfo, model: type[BaseModel] | None, when: str = "") -> Row:
    description = info.description or ""
    if not description and model is not None and model.__doc__:
        description = model.__doc__.strip().splitlines()[0]
    extra = _constraints(info)
    kind = type_name(info.annotation) + (f" ({extra})" if extra else "")
    return Row(name, kind, _default(info), f"{when} {description}".strip())


def rows(model: type[BaseModel]) -> list[Row]:
    """Every field of ``model`` and of its sections, depth first, in declaration order."""
    return _walk(model.model_fields, "", "")


def _walk(fields: dict[str, FieldInfo], prefix: str, when: str) -> list[Row]:
    out: list[Row] = []
    for name, info in fields.items():
        dotted = f"{prefix}{name}"
        suffix, models = _models_in(info.annotation)
        out.append(_field_row(dotted, info, models[0] if len(models) == 1 else None, when))
        if len(models) == 1:
            out += _walk(models[0].model_fields, f"{dotted}{suffix}.", when)
        elif models:
            out += _union_rows(models, f"{dotted}{suffix}.", when)
    return out


def _union_rows(models: list[type[BaseModel]], prefix: str, when: str) -> list[Row]:
    key = _discriminator(models)
    first = models[0].model_fields
    shared = {
        n: info
        for n, info in first.items()
        if n != key and all(_same(info, m.model_fields.get(n)) for m in models[1:])
    }
    out = _walk(shared, prefix, when)
    for model in models:
        own = {n: info for n, info in model.model_fields.items() if n not in shared}
        out += _walk(own, prefix, f"{when} {_variant_label(model, key)}".strip())
    return out


def _variant_label(model: type[BaseModel], key: str | None) -> str:
    if key is None:
        return f"({model.__name__})"
    values = _args(model.model_fields[key].annotation)
    return f"({key}={'|'.join(map(str, values))})"


# ------------------------------------------------------------------------------------------ rendering
def render_text(stage: str) -> str:
    """What ``octo <stage> schema`` prints: an aligned table of every field."""
    model = stage_model(stage)
    table = rows(model)
    width = max(len(r.name) for r in table)
    type_width = min(40, max(len(r.type) for r in table))
    lines = [f"{stage}: fields of {STAGE_MODELS[stage]} ({STAGE_CONFIGS[stage].replace('`', '')})", ""]
    for r in table:
        kind = r.type if len(r.type) <= type_width else r.type[: type_width - 3] + "..."
        lines.append(f"{r.name:<{width}}  {kind:<{type_width}}  = {r.default:<12}  {r.description}".rstrip())
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(stage: str) -> str:
    """The page ``docs/reference/<stage>.md``: a short introduction and one table of every field."""
    model = stage_model(stage)
    doc = (model.__doc__ or "").strip()
    lines = [
        f"<!-- generated by `octo docs` from {STAGE_MODELS[stage]}; do not edit, run `octo docs` -->",
        f"# `{stage}` fields",
        "",
        f"Every field of `{STAGE_MODELS[stage]}`, the model that validates {STAGE_CONFIGS[stage]}. Unknown "
        f"keys are errors; any field can be overridden on the command line as `key.sub=value`. "
        f"`octo {stage} schema` prints the same list. `[]` marks a list item, `<name>` a key you choose, "
        "`(type=...)` the fields of one variant.",
        "",
    ]
    if doc and not doc.startswith(model.__name__ + "("):
        lines += [doc, ""]
    lines += ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    for r in rows(model):
        lines.append(f"| `{r.name}` | `{_cell(r.type)}` | `{_cell(r.default)}` | {_cell(r.description)} |")
    return "\n".join(lines) + "\n"


def write_docs(out_dir: Path = DOCS_DIR, check: bool = False) -> list[Path]:
    """Write (or, with ``check``, compare) ``<out_dir>/<stage>.md``; returns the stale or written files."""
    changed = []
    for stage in STAGE_MODELS:
        path = Path(out_dir) / f"{stage}.md"
        text = render_markdown(stage)
        if path.is_file() and path.read_text() == text:
            continue
        changed.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return changed


# ------------------------------------------------------------------------------------------ commands
def schema_main(stage: str, argv: list[str]) -> int:
    """``octo <stage> schema [--markdown | --json]``."""
    parser = argparse.ArgumentParser(
        prog=f"octo {stage} schema", description=f"print the fields of a {stage} recipe"
    )
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="the table of docs/reference/<stage>.md")
    fmt.add_argument("--json", action="store_true", help="pydantic's JSON schema of the model")
    args = parser.parse_args(argv)
    if args.json:
        print(json.dumps(stage_model(stage).model_json_schema(), indent=2))
    elif args.markdown:
        print(render_markdown(stage), end="")
    else:
        print(render_text(stage))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``octo docs [--check] [--out DIR]``: write the field references under docs/reference/."""
    parser = argparse.ArgumentParser(prog="octo docs", description=main.__doc__)
    parser.add_argument("--out", type=Path, default=DOCS_DIR, help="folder of the <stage>.md pages")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a page is stale")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    changed = write_docs(args.out, check=args.check)
    for path in changed:
        print(f"{'stale' if args.check else 'wrote'}: {path}")
    if args.check and changed:
        print("run `octo docs` to regenerate the field references", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
