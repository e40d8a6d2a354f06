"""A corpus folder's layout and the paths derived from a recipe (the n-gram index, the tokenizer files).

Shared by the build, the classifier and the report, which never import each other for these.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from octo.assets import llama3_tokenizer_path
from octo.config import ConfigError
from octo.manifest import hash_path
from pipelines.recipe import CorpusRecipe, resolve_path


def layout(out: Path) -> dict[str, Path]:
    work = out / "work"
    return {
        "docs": out / "docs",
        "tokens": out / "tokens",
        "dropped": out / "dropped",
        "malformed": out / "malformed",
        "work": work,
        "logs": work / "logs",
        "filtered": work / "filtered",
        "minhash": work / "minhash",
        "decont_index": work / "decont_index",
        "tokens_unmerged": work / "tokens_unmerged",
        "tokenize_tmp": work / "tokenize_tmp",
    }


def stage_dir(out: Path, stage) -> Path:
    """The logging folder of a build stage (anything with a ``name``)."""
    # named by stage only: a stage that is skipped (a shared decont index that exists) shifts no other stage
    return layout(out)["logs"] / stage.name


def tokenizer_file(spec: str) -> Path:
    """tokenizer.json of a tokenizer folder, checkpoint folder, file, or 'llama3'."""
    if spec == "llama3":
        return llama3_tokenizer_path() / "tokenizer.json"
    path = resolve_path(spec)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(
            f"tokenize.tokenizer: {spec} has no tokenizer.json (give an HF tokenizer folder or the file)"
        )
    return path


def special_tokens(recipe: CorpusRecipe) -> tuple[str | None, str | None]:
    """Resolve tokenize.bos_token / eos_token; 'auto' reads tokenizer_config.json beside tokenizer.json."""
    t = recipe.tokenize
    resolved = []
    for role, value in (("bos", t.bos_token), ("eos", t.eos_token)):
        if value != "auto":
            resolved.append(value)
            continue
        config_file = tokenizer_file(t.tokenizer).parent / "tokenizer_config.json"
        token = None
        if config_file.is_file():
            token = json.loads(config_file.read_text()).get(f"{role}_token")
            token = token.get("content") if isinstance(token, dict) else token
        if not token:
            raise ConfigError(
                f"tokenize.{role}_token=auto: {config_file} names no {role} token; set tokenize.{role}_token "
                "to the token text, or null for none"
            )
        resolved.append(token)
    return resolved[0], resolved[1]


def decont_index_folder(recipe: CorpusRecipe) -> Path:
    """Where the n-gram index lives: the corpus's own work/ folder, or a shared folder keyed by its inputs."""
    d = recipe.decont
    if d.index_dir is None:
        return layout(Path(recipe.output_dir))["decont_index"]
    inputs = d.model_dump(mode="json", exclude={"examples", "index_dir"})
    inputs["files"] = [file_digest(f.path) for f in d.files]
    inputs["benchmarks_dir"] = str(resolve_path(d.benchmarks_dir)) if d.benchmarks_dir else None
    key = digest({"decont": inputs, "word_tokenizer": recipe.word_tokenizer})
    return resolve_path(d.index_dir) / f"{d.n_grams}gram-{key}"


def digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: str | None) -> str | None:
    if not path:
        return None
    info = hash_path(resolve_path(path))
    return info.get("sha256") or info.get("fingerprint")
