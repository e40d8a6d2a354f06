"""Token shards in, fixed-length training sequences out: a seeded, resumable mixture of sources.

Input format (datatrove ``DocumentTokenizer`` / ``DocumentTokenizerMerger`` output, what ``octo corpus build``
writes under ``<corpus>/tokens/``):
  ``*.ds``           token ids of all documents back to back, little-endian uint16 (vocab <= 65,536) or uint32
  ``*.ds.index``     little-endian uint64 cumulative end offset of each document, in tokens
  ``*.ds.metadata``  text: ``<tokenizer>|<bytes per token>``, token count, human-readable count

Packing. Each source is one endless stream: its documents in a seeded order (a new order every epoch, or file
order with ``data.shuffle: false``), each followed by exactly one EOS, cut into consecutive windows of
``sequence_length + 1`` tokens (inputs are the first ``sequence_length``, labels the last). Documents therefore
run across window boundaries, and attention is causal over the whole window, as in nanotron's Nanoset and most
pre-training. EOS: when the documents in the shards already end with EOS (datatrove's ``eos_token=`` option) the
stream is the shards as they are; when none do, one EOS is added after every document; a mix is an error.
BOS is never added or removed: whatever the corpus stage put at document starts stays. With ``shuffle: false``
and EOS present, the windows are exactly those of datatrove's ``DatatroveFolderDataset`` (tested).

Mixing. Every training sequence comes from one source. Sequence ``t`` of a stage goes to the source whose count
lags its weight the most (``argmax(w * (t + 1) - count)``, ties to the first listed), so at any point of a stage
each source's realised share of tokens is within one sequence of its weight, and the draw is deterministic.
A source that runs out starts its next epoch. Where each stream stands is a small dict saved with every
checkpoint, so a resumed run reads exactly the sequences the uninterrupted one would have.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from octo.config import ConfigError

EOS_CHECK_DOCS = 2000  # documents sampled per source to decide whether EOS is already there


def find_shards(folder: str | Path, field: str = "data") -> list[Path]:
    """The ``*.ds`` files of a token folder (or of ``<folder>/tokens``), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{field}: token folder not found: {folder}")
    files = sorted(folder.glob("*.ds"))
    if not files and (folder / "tokens").is_dir():
        files = sorted((folder / "tokens").glob("*.ds"))
    if not files:
        raise ConfigError(f"{field}: no *.ds token shards in {folder} (nor in {folder}/tokens)")
    return files


def shard_metadata(ds_file: Path) -> tuple[str, int]:
    """(tokenizer name, bytes per token) from ``<file>.ds.metadata``."""
    meta = Path(f"{ds_file}.metadata")
    if not meta.is_file():
        raise ConfigError(
            f"{ds_file}: missing {meta.name} (datatrove writes '<tokenizer>|<token size>' there)"
        )
    first = meta.read_text().splitlines()[0] if meta.read_text() else ""
    tokenizer, sep, size = first.rpartition("|")
    if not sep or size.strip() not in ("2", "4"):
        raise ConfigError(f"{meta}:1: expected '<tokenizer>|2' or '<tokenizer>|4', got {first!r}")
    return tokenizer, int(size)


class TokenSource:
    """One named source: its shards as memory maps, and an endless stream of windows over its documents."""

    def __init__(
        self,
        name: str,
        folder: str | Path,
        *,
        sequence_length: int,
        eos_token_id: int,
        eos: str = "auto",
        shuffle: bool = True,
        seed: int = 0,
        vocab_size: int | None = None,
        field: str = "data",
    ):
        self.name, self.window = name, sequence_length + 1
        self.files = find_shards(folder, field)
        self.tokenizer_name, self.token_size = shard_metadata(self.files[0])
        dtype = np.dtype("<u2" if self.token_size == 2 else "<u4")
        self.arrays, starts, lengths, file_ids = [], [], [], []
        for i, path in enumerate(self.files):
            name_i, size_i = shard_metadata(path)
            if size_i != self.token_size:
                raise ConfigError(
                    f"{path}: {size_i} bytes per token, but {self.files[0]} has {self.token_size}"
                )
            index = Path(f"{path}.index")
            if not index.is_file():
                raise ConfigError(f"{path}: missing {index.name} (uint64 document end offsets)")
            ends = np.fromfile(index, dtype="<u8").astype(np.int64)
            n_tokens = path.stat().st_size // self.token_size
            if path.stat().st_size % self.token_size or not len(ends) or ends[-1] != n_tokens:
                raise ConfigError(
                    f"{index}: document ends do not match {path.name} ({n_tokens} tokens of {self.token_size} "
                    f"bytes; last end {ends[-1] if len(ends) else 'none'})"
                )
            if np.any(np.diff(ends) < 0):
                raise ConfigError(f"{index}: document end offsets are not increasing")
            self.arrays.append(np.memmap(path, dtype=dtype, mode="r"))
            doc_starts = np.concatenate([[0], ends[:-1]])
            starts.append(doc_starts)
            lengths.append(ends - doc_starts)
            file_ids.append(np.full(len(ends), i, dtype=np.int32))
        self.doc_start = np.concatenate(starts)
        self.doc_len = np.concatenate(lengths)
        self.doc_file = np.concatenate(file_ids)
        self.eos_token_id = eos_token_id
        if vocab_size is not None:  # a cheap look at the start of the first files
            top = max(int(a[: 1 << 16].max()) for a in self.arrays[:8] if len(a))
            if top >= vocab_size:
                raise ConfigError(
                    f"{field}: {self.files[0].parent} holds token id {top}, beyond the model's vocabulary "
                    f"({vocab_size}); the shards were made with another tokenizer ({self.tokenizer_name})"
                )
        self.insert_eos = self._decide_eos(eos, field)
        self.doc_vlen = self.doc_len + (1 if self.insert_eos else 0)
        self.epoch_tokens = int(self.doc_vlen.sum())
        if self.epoch_tokens < 1:
            raise ConfigError(f"{field}: {self.files[0].parent} has no tokens")
        self.shuffle, self.seed = shuffle, (seed, zlib.crc32(name.encode()))
        self._epochs: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def _decide_eos(self, mode: str, field: str) -> bool:
        """True when the stream must add an EOS after each document (the shards have none)."""
        n = len(self.doc_len)
        picks = np.unique(np.linspace(0, n - 1, min(n, EOS_CHECK_DOCS)).astype(np.int64))
        picks = picks[self.doc_len[picks] > 0]
        last = np.array(
            [self.arrays[self.doc_file[i]][self.doc_start[i] + self.doc_len[i] - 1] for i in picks]
        )
        ending = int((last == self.eos_token_id).sum())
        where = self.files[0].parent
        if mode == "present":
            if ending < len(picks):
                raise ConfigError(
                    f"{field}: data.eos=present, but {len(picks) - ending} of {len(picks)} sampled documents in "
                    f"{where} do not end with EOS id {self.eos_token_id}"
                )
            return False
        if mode == "insert":
            if ending == len(picks) and len(picks):
                raise ConfigError(
                    f"{field}: data.eos=insert, but the documents in {where} already end with EOS id "
                    f"{self.eos_token_id}: inserting would double it (use eos: auto)"
                )
            return True
        if ending == len(picks):
            return False
        if ending == 0:
            return True
        raise ConfigError(
            f"{field}: {ending} of {len(picks)} sampled documents in {where} end with EOS id {self.eos_token_id} "
            "and the others do not; fix the corpus or set data.eos"
        )

    @property
    def documents(self) -> int:
        return len(self.doc_len)

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(document order, cumulative end of each document in that order) for one epoch."""
        if epoch not in self._epochs:
            n = len(self.doc_len)
            if self.shuffle:
                order = np.random.default_rng([*self.seed, epoch]).permutation(n)
            else:
                order = np.arange(n)
            self._epochs[epoch] = (order, np.cumsum(self.doc_vlen[order]))
            while len(self._epochs) > 2:
                self._epochs.popitem(last=False)
        return self._epochs[epoch]

    def read(self, begin: int, end: int) -> np.ndarray:
        """Tokens ``[begin, end)`` of the endless stream."""
        out = np.empty(end - begin, dtype=np.int64)
        pos = begin
        while pos < end:
            epoch, offset = divmod(pos, self.epoch_tokens)
            order, cum_end = self._epoch(epoch)
            i = int(np.searchsorted(cum_end, offset, side="right"))
            doc = order[i]
            within = offset - (int(cum_end[i]) - int(self.doc_vlen[doc]))
            take = min(end - pos, int(self.doc_vlen[doc]) - within)
            real = max(0, min(take, int(self.doc_len[doc]) - within))  # tokens from the file; the rest is EOS
            start = int(self.doc_start[doc]) + within
            at = pos - begin
            out[at : at + real] = self.arrays[self.doc_file[doc]][start : start + real]
            out[at + real : at + take] = self.eos_token_id
            pos += take
        return out

    def window_at(self, index: int) -> np.ndarray:
        return self.read(index * self.window, (index + 1) * self.window)


class Mixture:
    """Draws the sequences of every step of a plan from named sources; its ``state`` resumes it exactly."""

    def __init__(self, plan, sources: dict[str, TokenSource], state: dict | None = None):
        self.plan, self.sources = plan, sources
        state = state or {}
        # windows read so far from each stream, over the whole lineage (a branch continues its parent's streams)
        self.streams: dict[str, int] = {n: int(k) for n, k in state.get("streams", {}).items()}
        for name in sources:
            self.streams.setdefault(name, 0)
        # sequences drawn from each source in each stage of this run
        self.stages: dict[str, dict[str, int]] = {s: dict(c) for s, c in state.get("stages", {}).items()}

    @property
    def state(self) -> dict:
        return {"streams": dict(self.streams), "stages": {s: dict(c) for s, c in self.stages.items()}}

    @property
    def run_counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for counts in self.stages.values():
            for name, c in counts.items():
                total[name] = total.get(name, 0) + c
        return total

    def select(self, step: int) -> list[tuple[str, int]]:
        """The (source, window index) of every sequence of the global batch of ``step``; advances the streams."""
        stage = self.plan.stages[self.plan.stage_at(step)]
        stage_counts = self.stages.setdefault(stage.name, {name: 0 for name in stage.weights})
        names, w = list(stage.weights), np.array(list(stage.weights.values()))
        counts = np.array([stage_counts[n] for n in names], dtype=np.float64)
        drawn = int(counts.sum())
        picks = []
        for _ in range(self.plan.batch_sequences):
            drawn += 1
            k = int(np.argmax(w * drawn - counts))
            counts[k] += 1
            name = names[k]
            picks.append((name, self.streams[name]))
            self.streams[name] += 1
        for name, c in zip(names, counts):
            stage_counts[name] = int(c)
        return picks

    def batch(self, step: int, rank: int = 0, world: int = 1) -> np.ndarray:
        """This rank's share of the global batch of ``step``: an int64 array [sequences, sequence_length + 1]."""
        picks = self.select(step)
        per_rank = len(picks) // world
        mine = picks[rank * per_rank : (rank + 1) * per_rank]
        return np.stack([self.sources[name].window_at(index) for name, index in mine])


def open_sources(plan, *, eos_token_id: int, eos: str, shuffle: bool, seed: int, vocab_size: int | None):
    """Open every source named in the plan once (a source in several stages is one stream)."""
    sources: dict[str, TokenSource] = {}
    for stage in plan.stages:
        for name, path in stage.paths.items():
            if name not in sources:
                sources[name] = TokenSource(
                    name,
                    path,
                    sequence_length=plan.sequence_length,
                    eos_token_id=eos_token_id,
                    eos=eos,
                    shuffle=shuffle,
                    seed=seed,
                    vocab_size=vocab_size,
                    field=f"data.stages.{stage.name}.mixture.{name}.path",
                )
    return sources
