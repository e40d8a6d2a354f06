"""The project's own datatrove steps: only what datatrove lacks.

* Readers that account for every input record: a malformed line (bad JSON, not an object, missing or empty
  text, undecodable bytes, a corrupt file) is counted under ``malformed/<reason>`` and logged with its file and
  line in ``<out>/malformed/``, never crashing the task and never disappearing silently. The same readers render
  records through the source's template (QA pairs, instruction data, chain-of-thought solutions) and tag each
  document with its source.
* A reader for the offline demo sources, and one for evaluation sets (the decontamination index input).
* A math classifier filter with MegaMath-style text normalisation that records its score, a language filter
  over a local fastText model (datatrove's downloads its model), and source scoping for filters.
* The n-gram index builder (datatrove's needs lighteval's registry, which fails here), a tokenizer that
  counts tokens per source and sets BOS/EOS explicitly, and a regex word tokenizer (no spaCy).
"""

from __future__ import annotations

import io
import os
from collections import defaultdict
from functools import cached_property

import orjson
import regex
from datatrove.data import Document, DocumentsPipeline
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontIndexer
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FastTextClassifierFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    LanguageFilter,
)
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.readers import HuggingFaceDatasetReader, JsonlReader, ParquetReader
from datatrove.pipeline.readers.base import BaseReader
from datatrove.pipeline.tokens.tokenizer import DocumentTokenizer, TokenizedFile
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.batching import batched
from datatrove.utils.hashing import create_hash_func
from datatrove.utils.lid import FastTextLID
from datatrove.utils.logging import logger
from datatrove.utils.word_tokenizers import WordTokenizer, load_word_tokenizer

from octo.assets import benchmark_items
from octo.errors import ConfigError
from octo.jsonl import read_jsonl
from octo.registry import registrar
from pipelines.sources import FormatError, Formatter, offline_records

INTERNAL_KEYS = ("dedup_group",)  # metadata used between stages, removed before the final documents


# ------------------------------------------------------------------------------------------ text helpers
class RegexWordTokenizer(WordTokenizer):
    """Words (incl. LaTeX commands like \\frac), numbers and single symbols; 4-8x faster than spaCy."""

    _words = regex.compile(r"\\?\p{L}+|\p{N}+|[^\s\p{L}\p{N}]")
    _sentence_end = regex.compile(r"(?<=[.!?])\s+")

    def __init__(self):
        super().__init__("en")

    def word_tokenize(self, text: str) -> list[str]:
        return self._words.findall(text)

    def sent_tokenize(self, text: str) -> list[str]:
        return [s for s in self._sentence_end.split(text) if s.strip()]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        spans, start = [], 0
        for sentence in self.sent_tokenize(text):
            start = text.index(sentence, start)
            spans.append((start, start + len(sentence)))
            start += len(sentence)
        return spans


_DIGITS = regex.compile(r"\d+")
_PUNCT = regex.compile(r"([^\w\s])")
_SPACES = regex.compile(r"\s+")


def megamath_normalise(text: str) -> str:
    """fastText input as in MegaMath: lowercase, every digit run -> 0, lines joined, symbols split off."""
    text = _DIGITS.sub("0", text.lower())
    text = _PUNCT.sub(r" \1 ", text)
    return _SPACES.sub(" ", text).strip()


# ------------------------------------------------------------------------------------------------ readers
class _Accounted:
    """Mixin for readers: renders records with the source's template, tags the source, logs every reject."""

    def setup_source(self, name: str, formatter: Formatter, fmt: str, keep_fields=(), id_key="id",
                     rejects_folder: DataFolderLike | None = None, dedup_group: str | None = None):  # fmt: skip
        self.source_name = name
        self.formatter = formatter
        self.fmt = fmt
        self.keep_fields = tuple(keep_fields)
        self.id_key = id_key
        self.rejects_folder = get_datafolder(rejects_folder) if rejects_folder else None
        self.dedup_group = dedup_group
        self._rank = 0
        self._reject_file = None
        return self

    def reject(self, where: str, line: int | str, reason: str, detail: str = "") -> None:
        self.stat_update(f"malformed/{reason}", f"malformed_source/{self.source_name}")
        logger.warning(f"{self.source_name}: {where}:{line}: {reason} {detail}".rstrip())
        if self.rejects_folder is None:
            return
        if self._reject_file is None:  # one file per source and rank, rewritten when the task reruns
            self._reject_file = self.rejects_folder.open(f"{self.source_name}_{self._rank:05d}.jsonl", "wt")
        row = {
            "source": self.source_name,
            "file": str(where),
            "line": line,
            "reason": reason,
            "detail": detail[:300],
        }
        self._reject_file.write(orjson.dumps(row).decode() + "\n")

    def get_document_from_dict(self, data: dict, source_file: str, id_in_file):
        line = id_in_file + 1 if isinstance(id_in_file, int) else id_in_file
        try:
            text = self.formatter.render(data)
        except FormatError as exc:
            self.reject(source_file, line, str(exc))
            return None
        raw_id = data.get(self.id_key)
        doc_id = (
            str(raw_id)
            if isinstance(raw_id, (str, int))
            else f"{self.source_name}/{os.path.basename(str(source_file))}:{line}"
        )
        metadata = {"source": self.source_name, "format": self.fmt, "origin": f"{source_file}:{line}"}
        metadata.update({k: data[k] for k in self.keep_fields if k in data})
        if self.dedup_group:
            metadata["dedup_group"] = self.dedup_group
        self.stat_update(f"read_source/{self.source_name}")
        return Document(text=text, id=doc_id, metadata=metadata)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._rank = rank
        try:
            yield from super().run(data, rank, world_size)
        finally:
            if self._reject_file is not None:
                self._reject_file.close()
                self._reject_file = None


def _split_lines(f, chunk_size: int = 1 << 16):
    """Lines of a binary stream, trailing newline removed. Line by line where the stream can (so a truncated
    gzip yields every whole line before the break); in chunks where it cannot (zstd readers have no readline)."""
    try:
        first = f.readline()
    except io.UnsupportedOperation:
        first = None
    if first is not None:
        line = first
        while line:
            yield line.rstrip(b"\n")
            line = f.readline()
        return
    pending = b""
    while chunk := f.read(chunk_size):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        yield from complete
    if pending:
        yield pending


class SourceJsonlReader(_Accounted, JsonlReader):
    """JSONL (plain, .gz, .zst) where every line ends up a document or a logged reject."""

    name = "🐿 Jsonl (accounted)"

    def read_file(self, filepath: str):
        try:
            f = self.data_folder.open(filepath, "rb", compression=self.compression)
        except Exception as exc:  # unreadable file: one reject for the file, the task goes on
            self.reject(filepath, 0, "corrupt_file", repr(exc))
            return
        with f:
            lines, line = _split_lines(f), 0
            while True:
                try:
                    raw = next(lines)
                except StopIteration:
                    return
                except Exception as exc:  # truncated gzip, bad zstd frame: the rest of the file is one reject
                    self.reject(filepath, line + 1, "corrupt_file", repr(exc))
                    return
                line += 1
                with self.track_time():
                    document = self._parse(raw, filepath, line)
                if document is not None:
                    yield document

    def _parse(self, raw: bytes, filepath: str, line: int):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.reject(filepath, line, "undecodable", str(exc))
            return None
        if not text.strip():
            self.reject(filepath, line, "blank_line")
            return None
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            self.reject(filepath, line, "bad_json", str(exc))
            return None
        if not isinstance(data, dict):
            self.reject(filepath, line, "not_an_object", type(data).__name__)
            return None
        return self.get_document_from_dict(data, filepath, line - 1)


class SourceParquetReader(_Accounted, ParquetReader):
    name = "📒 Parquet (accounted)"

    def read_file(self, filepath: str):
        try:
            yield from super().read_file(filepath)
        except Exception as exc:  # a corrupt file is logged and skipped, the task goes on
            self.reject(filepath, "?", "corrupt_file", repr(exc))


class SourceHubReader(_Accounted, HuggingFaceDatasetReader):
    name = "🤗 HuggingFace (accounted)"


class OfflineSourceReader(_Accounted, BaseReader):
    """Records of an offline source (wiki leads, CHAMP, GSM8K, reasoning-gym, arithmetic), sharded by index."""

    name = "📦 Offline source"

    def __init__(self, kind: str, spec: dict, limit: int = -1):
        super().__init__(limit=limit)
        self.kind = kind
        self.spec = spec

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self._rank = rank
        if data:
            yield from data
        produced = 0
        try:
            for index, record in enumerate(offline_records(self.kind, self.spec)):
                if index % world_size != rank:
                    continue
                if self.limit != -1 and produced >= self.limit:
                    break
                with self.track_time():
                    document = self.get_document_from_dict(record, f"{self.kind}:{self.source_name}", index)
                if document is None:
                    continue
                produced += 1
                self.update_doc_stats(document)
                yield document
        finally:
            if self._reject_file is not None:
                self._reject_file.close()
                self._reject_file = None


class InternalJsonlReader(JsonlReader):
    """Re-reads an intermediate folder; an empty or missing folder is simply no documents."""

    name = "🐿 Jsonl (intermediate)"

    def __init__(self, data_folder: DataFolderLike, **kwargs):
        super().__init__(data_folder, add_file_path=False, **kwargs)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if not self.data_folder.exists("") or not self.data_folder.list_files(glob_pattern=self.glob_pattern):
            if data:
                yield from data
            return
        yield from super().run(data, rank, world_size)


class BenchmarkReader(BaseReader):
    """Evaluation items as documents: text = solution (or answer), metadata query = question, task = name."""

    name = "📚 Evaluation sets"

    def __init__(self, benchmarks=(), source: str = "auto", root: str | None = None, files=()):
        super().__init__()
        self.benchmarks = list(benchmarks)
        self.source = source
        self.root = root
        self.files = [dict(f) for f in files]

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if data:
            yield from data
        for name in self.benchmarks:
            for item in benchmark_items(name, source=self.source, root=self.root):
                self.stat_update(f"items/{name}")
                yield Document(
                    text=item.get("solution") or item["answer"] or "",
                    id=item["id"],
                    metadata={"query": item["question"], "task": name},
                )
        for spec in self.files:
            for i, row in enumerate(read_jsonl(spec["path"])):
                self.stat_update(f"items/{spec['name']}")
                yield Document(
                    text=str(row.get(spec["answer_key"]) or ""),
                    id=f"{spec['name']}-{i}",
                    metadata={"query": str(row.get(spec["question_key"]) or ""), "task": spec["name"]},
                )


# ---------------------------------------------------------------------------------------------- filters
class _SourceScope:
    """Filters with ``apply_to`` set only judge documents of those sources; the rest pass through."""

    apply_to: tuple[str, ...] | None = None

    def out_of_scope(self, doc: Document) -> bool:
        if self.apply_to is not None and doc.metadata.get("source") not in self.apply_to:
            self.stat_update("out_of_scope")
            return True
        return False

    def filter(self, doc: Document):
        return True if self.out_of_scope(doc) else super().filter(doc)


def _load_fasttext(path: str):
    from fasttext.FastText import _FastText

    return _FastText(path)


class MathClassifierFilter(_SourceScope, FastTextClassifierFilter):
    """Keeps documents whose P(label) >= threshold on MegaMath-normalised text; records the score."""

    name = "🧮 Math classifier"

    def __init__(self, model_path: str, label: str = "math", threshold: float = 0.5, exclusion_writer=None):
        super().__init__(model_path, keep_labels=(label, threshold), exclusion_writer=exclusion_writer)
        self.label, self.threshold = label, threshold

    @property
    def model(self):
        # loaded from its own path: datatrove would copy it into a cache keyed by path and never refresh it
        if self._model is None:
            self._model = _load_fasttext(self.model_url)
            if f"__label__{self.label}" not in self._model.labels:
                raise ConfigError(f"{self.model_url}: no label '{self.label}' (labels: {self._model.labels})")
        return self._model

    def filter(self, doc: Document):
        if self.out_of_scope(doc):
            return True
        labels, scores = self.model.predict(megamath_normalise(doc.text), k=-1)
        score = float(dict(zip(labels, scores)).get(f"__label__{self.label}", 0.0))
        doc.metadata[f"{self.label}_score"] = round(score, 4)
        self.stat_update(f"{self.label}_score", value=score)
        return True if score >= self.threshold else (False, f"{self.label}_score_below_{self.threshold}")


class LocalFastTextLID(FastTextLID):
    """datatrove's fastText language ID over a local model file (labels ``__label__<lang>``)."""

    def __init__(self, path: str, languages=None):
        super().__init__(languages)
        self.path = path

    @property
    def model(self):
        if self._model is None:
            self._model = _load_fasttext(self.path)
        return self._model


class ScopedLanguageFilter(_SourceScope, LanguageFilter):
    name = "🌍 Language ID"

    def __init__(self, languages, threshold: float, model_path: str | None = None, exclusion_writer=None):
        super().__init__(languages=languages, language_threshold=threshold, exclusion_writer=exclusion_writer)
        if model_path:
            self.model = LocalFastTextLID(model_path, self.languages)

    def filter(self, doc: Document):
        kept = super().filter(doc)
        return kept if kept else (False, "language")


class MetadataThresholdFilter(_SourceScope, BaseFilter):
    """Keeps documents whose numeric metadata value lies in [minimum, maximum] (e.g. FineMath's int_score >= 3)."""

    name = "🔢 Metadata threshold"

    def __init__(
        self, key: str, minimum: float | None = None, maximum: float | None = None, exclusion_writer=None
    ):
        super().__init__(exclusion_writer)
        self.key, self.minimum, self.maximum = key, minimum, maximum

    def filter(self, doc: Document):
        if self.out_of_scope(doc):
            return True
        value = doc.metadata.get(self.key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False, f"{self.key}_missing"
        if self.minimum is not None and value < self.minimum:
            return False, f"{self.key}_below_{self.minimum}"
        if self.maximum is not None and value > self.maximum:
            return False, f"{self.key}_above_{self.maximum}"
        return True


QUALITY_FILTERS: dict[
    str, type
] = {}  # filters.quality[].name -> its step; recipes are checked against it on load
quality_filter = registrar(QUALITY_FILTERS)  # @quality_filter("name") registers a quality heuristic


@quality_filter("gopher_quality")
class ScopedGopherQuality(_SourceScope, GopherQualityFilter):
    pass


@quality_filter("gopher_repetition")
class ScopedGopherRepetition(_SourceScope, GopherRepetitionFilter):
    pass


@quality_filter("fineweb_quality")
class ScopedFineWebQuality(_SourceScope, FineWebQualityFilter):
    pass


@quality_filter("c4_quality")
class ScopedC4Quality(_SourceScope, C4QualityFilter):
    pass


# --------------------------------------------------------------------------------------------- writers
class DroppedWriter(JsonlWriter):
    """Keeps dropped documents (with their reason) and counts drops per source on the owning step."""

    def __init__(self, output_folder: DataFolderLike):
        super().__init__(output_folder, output_filename="${source}_${rank}.jsonl.gz")
        # the owning step's Stats (not the step: executor.json would see a reference cycle)
        self.owner_stats = None

    def write(self, document: Document, rank: int = 0, **kwargs):
        for key in INTERNAL_KEYS:
            document.metadata.pop(key, None)
        if self.owner_stats is not None:
            self.owner_stats[f"dropped_source/{document.metadata.get('source')}"].update(1)
        super().write(document, rank, **kwargs)


def with_dropped_writer(step: PipelineStep, folder: str) -> PipelineStep:
    writer = DroppedWriter(folder)
    writer.owner_stats = step.stats
    step.exclusion_writer = writer
    return step


class SourceCounter(PipelineStep):
    """Counts documents per source at a point of the pipeline and strips stage-internal metadata."""

    type = "📊 - STATS"
    name = "📊 Source counter"

    def __init__(self, label: str = "kept", strip_internal: bool = True):
        super().__init__()
        self.label = label
        self.strip_internal = strip_internal

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data:
            if self.strip_internal:
                for key in INTERNAL_KEYS:
                    doc.metadata.pop(key, None)
            self.stat_update(f"{self.label}_source/{doc.metadata.get('source')}")
            self.update_doc_stats(doc)
            yield doc


# -------------------------------------------------------------------------------------------- decont
class NGramIndexBuilder(PipelineStep):
    """Writes ``<task>.index.hashes`` like datatrove's NGramsDecontIndexer, from input documents only.

    datatrove's indexer always builds lighteval's task registry (and downloads task data); with lighteval 0.13
    that fails. The hashing is datatrove's own (``compute_hashes``), so its NGramsDecontFilter reads the index.
    """

    type = "🦠 - DECONT"
    name = "💥 N-grams index (local eval sets)"
    compute_hashes = NGramsDecontIndexer.compute_hashes

    def __init__(self, output_folder: DataFolderLike, config: NGramsDecontConfig, language=None):
        super().__init__()
        self.output_folder = get_datafolder(output_folder)
        self.config = config
        # the same word splitter as the filter that reads the index (a WordTokenizer, or a language like "en")
        self.tokenizer = load_word_tokenizer(language) if language is not None else RegexWordTokenizer()
        self.hash_func = create_hash_func(self.config.hash_config)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        import numpy as np

        if world_size != 1:
            raise ValueError("the n-gram index is built by a single task")
        hashes: dict[str, set[int]] = defaultdict(set)
        for doc in data or ():
            task = doc.metadata.get("task", "input")
            new = self.compute_hashes(doc.text, doc.metadata.get("query"))
            self.stat_update(f"items/{task}")
            if not new:  # shorter than n words even with the question: cannot be matched
                self.stat_update(f"too_short/{task}")
            hashes[task].update(new)
        summary = {}
        for task, task_hashes in sorted(hashes.items()):
            self.stat_update(f"hashes/{task}", value=len(task_hashes))
            array = np.array(sorted(task_hashes), dtype=self.config.hash_config.np_descr)
            with self.output_folder.open(f"{task.replace(' ', '_')}.index.hashes", mode="wb") as f:
                f.write(array.tobytes())
            items = self.stats[f"items/{task}"].total
            summary[task] = {
                "items": items,
                "too_short": self.stats[f"too_short/{task}"].total,
                "hashes": len(task_hashes),
            }
        # read by the report (also when a later corpus reuses this index), then the marker that says it is whole
        with self.output_folder.open("index_stats.json", "wt") as f:
            f.write(orjson.dumps(summary).decode())
        with self.output_folder.open(".complete", "wt") as f:
            f.write("ok\n")
        yield from ()


# ------------------------------------------------------------------------------------------ tokenizer
class SourceTokenizer(DocumentTokenizer):
    """DocumentTokenizer with explicit BOS/EOS and token counts per source (``tokens_source/<name>``)."""

    name = "✍️ Tokenizer (per source)"

    def __init__(self, *args, bos_token: str | None = None, eos_token: str | None = None, **kwargs):
        super().__init__(*args, eos_token=None, **kwargs)
        self.bos, self.eos = bos_token, eos_token

    @cached_property
    def tokenizer(self):
        from datatrove.utils.tokenization import load_tokenizer
        from tokenizers.processors import TemplateProcessing

        tok = load_tokenizer(self.tokenizer_name_or_path)
        specials, parts = [], []
        for role, token in (("bos", self.bos), ("eos", self.eos)):
            if token is None:
                continue
            token_id = tok.token_to_id(token)
            if token_id is None:
                raise ConfigError(
                    f"{self.tokenizer_name_or_path}: {role} token {token!r} is not in the vocabulary"
                )
            specials.append((token, token_id))
        parts = ([self.bos] if self.bos else []) + ["$A"] + ([self.eos] if self.eos else [])
        # replaces whatever the tokenizer.json adds itself, so BOS/EOS are exactly what the recipe says
        tok.post_processor = TemplateProcessing(single=" ".join(parts), special_tokens=specials)
        return tok

    def write_unshuffled(self, data: DocumentsPipeline, filename: str):
        unshuffled = TokenizedFile(
            self.output_folder
            if (not self.shuffle_documents and not self.shuffle_chunk_size) or not self.local_working_dir
            else self.local_working_dir,
            filename,
            save_index=True,
            upload_block_size=self.upload_block_size,
            tokenizer_name_or_path=self.tokenizer_name_or_path,
            save_final_metadata=self.save_final_metadata,
            token_size=self.token_size,
        )
        for batch in batched(data, self.batch_size):
            with self.track_time(unit="batch"):
                encoded = self.tokenizer.encode_batch([document.text for document in batch])
                for document, encoding in zip(batch, encoded):
                    unshuffled.write(encoding.ids, None)
                    self.stat_update("tokens", value=len(encoding.ids))
                    self.stat_update(
                        f"tokens_source/{document.metadata.get('source')}", value=len(encoding.ids)
                    )
                    self.stat_update(f"docs_source/{document.metadata.get('source')}")
        unshuffled.close()
        return unshuffled
