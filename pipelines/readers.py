"""The datatrove reader of a recipe source (local JSONL/Parquet, the Hub, or an offline generator)."""

from __future__ import annotations

from pathlib import Path

from octo.config import ConfigError
from octo.sources import FILE_SOURCES, HUB, JSONL
from pipelines import steps
from pipelines.recipe import OFFLINE_TYPES, resolve_path
from pipelines.sources import Formatter


def local_or_remote(path: str) -> str:
    return path if "://" in path else str(resolve_path(path))


def make_reader(source, rejects_folder=None, dedup_group: str | None = None):
    """The datatrove reader of one recipe source, rendering records with the source's template."""
    formatter = Formatter(source.resolved_template, source.fields, source.constants)
    fmt = source.format
    id_key = getattr(source, "id_key", "id")
    if source.type in FILE_SOURCES:
        path = local_or_remote(source.path)
        folder, glob = path, source.glob
        if "://" not in path and Path(path).is_file():
            folder, glob = str(Path(path).parent), Path(path).name
        if source.type == JSONL:
            reader = steps.SourceJsonlReader(
                folder, glob_pattern=glob, compression=source.compression, limit=source.limit
            )
        else:
            reader = steps.SourceParquetReader(folder, glob_pattern=glob, limit=source.limit)
    elif source.type == HUB:
        options = {"split": source.split, **source.load_options}
        if source.subset:
            options["name"] = source.subset
        reader = steps.SourceHubReader(
            source.dataset, dataset_options=options, streaming=source.streaming, limit=source.limit
        )
    elif source.type in OFFLINE_TYPES:
        reader = steps.OfflineSourceReader(source.type, source.model_dump(mode="json"), limit=source.limit)
    else:  # pragma: no cover - the recipe model rejects other types
        raise ConfigError(f"source {source.name}: unknown type {source.type}")
    return reader.setup_source(
        source.name,
        formatter,
        fmt,
        source.keep_fields,
        id_key,
        rejects_folder=rejects_folder,
        dedup_group=dedup_group,
    )
