"""Batched generation for a transformers causal LM that shares prompt work: the engine behind few-shot
evaluation and RL rollouts on the transformers path (CPU or one GPU).

What it does that a plain ``model.generate`` call over a batch does not:

* **shared prefix**: the longest token prefix common to every prompt (the few-shot exemplar block of a task)
  is prefilled once, as a ``DynamicCache`` of batch 1, and copied into every batch
  (``batch_repeat_interleave``); only each prompt's own suffix is prefilled per batch;
* **one prompt, n completions**: each prompt is prefilled once and its cache repeated ``n`` times (GRPO's G
  rollouts of a prompt, pass@k samples);
* **length-sorted batches**: prompts are batched longest first, so padding is small;
* **continuous batching** (``refill=True``; off by default until measured): once half the rows have finished, waiting prompts are prefilled and merged into the
  running cache (``_Running``), so a batch is not held by its longest row;
* **finished rows leave the batch**: a row stops at EOS, at a stop string (checked in the generated text only)
  or at the budget, and is removed from the cache (``batch_select_indices``), so the forward pass shrinks as
  rows finish instead of padding them to the longest one;
* **a cache that grows in place** (``octo/growing_cache.py``): a decode step writes into a preallocated buffer
  instead of ``DynamicLayer``'s ``torch.cat`` of the whole cache (``grow_cache=False`` restores it);
* **batch size from memory**: the rows per batch are capped by the KV cache that fits in a share of the
  memory available (``rows_that_fit``).

Greedy decoding is argmax over the same logits that ``generate`` sees, so greedy completions are the same as
``generate``'s up to floating-point differences between a padded batch and the split prefix/suffix prefill
(tests compare both on a tiny and on the real SmolLM2 model). Sampling uses transformers' own logits warpers
(temperature, top-k, top-p) and draws by inverse CDF (the same distribution as ``torch.multinomial``, ~20x
cheaper on CPU over a 49k vocabulary); it is repeatable for a seed, but the draws differ from ``generate``'s (another draw
method, and rows leave the batch at different times).
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass

from .attention import NAME as GROUPED_SDPA
from .attention import grouped_sdpa

_TEXTS: dict[tuple[int, int], list[str]] = {}  # (id(tokenizer), vocab size) -> text of every single token


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


def token_texts(tokenizer, vocab_size: int) -> list[str]:
    """The decoded text of every token id (special tokens decode to ''), computed once per tokenizer."""
    key = (id(tokenizer), vocab_size)
    if key not in _TEXTS:
        known = len(tokenizer)
        texts = tokenizer.batch_decode([[i] for i in range(min(known, vocab_size))], skip_special_tokens=True)
        _TEXTS.clear()  # one tokenizer at a time is the normal case; keep memory bounded
        _TEXTS[key] = texts + [""] * max(vocab_size - known, 0)
    return _TEXTS[key]


class StopStrings:
    """Per-row check that a stop string appeared in the *generated* text (the prompt is never searched).

    Each row keeps the tail of its text, built from per-token texts (cheap); a hit there is confirmed on the
    jointly decoded completion, so a stop reported here is one that ``tokenizer.decode`` shows too.
    """

    def __init__(self, tokenizer, stops: list[str], vocab_size: int):
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.texts = token_texts(tokenizer, vocab_size) if self.stops else []
        self.window = max((len(s) for s in self.stops), default=0) + 8

    def hit(self, tail: str, token: int, ids: list[int]) -> tuple[str, bool]:
        if not self.stops:
            return tail, False
        tail = (tail + self.texts[token])[-self.window :]
        if any(s in tail for s in self.stops):
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            return tail, any(s in text for s in self.stops)
        return tail, False


def available_memory(device) -> int:
    """Bytes free for generation: free GPU memory, or MemAvailable on Linux (4 GiB when unknown)."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def rows_that_fit(model, context: int, prefill: int, share: float = 0.25) -> int:
    """Rows whose KV cache (``context`` tokens), logits and prefill attention fit in ``share`` of free memory."""
    cfg = model.config
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    elem = next(model.parameters()).element_size()
    per_row = 2 * cfg.num_hidden_layers * kv_heads * head_dim * elem * context  # keys + values
    per_row += 4 * 4 * cfg.vocab_size  # float32 logits and their processed copies
    per_row += 4 * heads * prefill * context + 4 * prefill * (cfg.intermediate_size + 4 * cfg.hidden_size)
    return max(1, int(available_memory(model.device) * share // per_row))


def common_prefix(prompts: list[list[int]]) -> int:
    """Length of the token prefix all prompts share, leaving every prompt at least one token of its own."""
    if not prompts:
        return 0
    first, size = prompts[0], min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        k = 0
        while k < size and p[k] == first[k]:
            k += 1
        size = k
    return max(size, 0)


class Generator:
    """``generate(prompts, n, ...)`` for one model: prompt token ids in, per prompt ``n`` lists of new token ids
    out (each ends with its EOS token or the token that completed a stop string; callers cut the stop text)."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_rows: int = 64,
        memory_share: float = 0.25,
        min_prefix: int = 16,
        refill: bool = False,
        grow_cache: bool = True,
    ):
        self.model, self.tokenizer = model, tokenizer
        # True: the decode cache grows in place (octo/growing_cache.py) instead of a torch.cat per step
        self.grow_cache = grow_cache
        # True: continuous batching (_Running). Off by default: it was not yet measured to gain (docs/generation.md)
        self.refill = refill
        self.max_rows, self.memory_share, self.min_prefix = max_rows, memory_share, min_prefix
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.vocab_size = model.config.vocab_size
        self.last_stats: dict = {}

    def batch_rows(self, prompts: list[list[int]], prefix: int, max_new_tokens: int) -> int:
        longest = max(len(p) for p in prompts)
        fit = rows_that_fit(self.model, longest + max_new_tokens, longest - prefix, self.memory_share)
        return max(1, min(self.max_rows, fit))

    def generate(
        self,
        prompts: list[list[int]],
        n: int,
        max_new_tokens: int,
        eos_ids,
        stop: list[str] = (),
        sampling: Sampling = Sampling(),
        share_prefix: bool = True,
    ) -> list[list[list[int]]]:
        import torch

        prefix = common_prefix(prompts) if share_prefix and len(prompts) > 1 else 0
        prefix = prefix if prefix >= self.min_prefix else 0
        rows = self.batch_rows(prompts, prefix, max_new_tokens)
        per_batch = max(1, rows // n)
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        stops = StopStrings(self.tokenizer, list(stop), self.vocab_size)
        eos = set(eos_ids if isinstance(eos_ids, (list, tuple, set)) else [eos_ids])
        self.last_stats = {
            "prefix_tokens": prefix,
            "rows_per_batch": per_batch * n,
            "prefills": 0,
            "steps": 0,
        }
        self.last_stats["refills"] = 0  # prefills admitted while other rows were still decoding
        # grouped_sdpa: on CPU, attention with the padding mask without copying the KV heads per query head
        with torch.no_grad(), grouped_sdpa(self.model):
            cached = self._prefill_prefix(prompts[0][:prefix]) if prefix else None
            run = _Running(self, prompts, prefix, cached, n, per_batch)
            generated = run.decode(order, max_new_tokens, eos, stops, sampling)
        return [[generated[(i, k)] for k in range(n)] for i in range(len(prompts))]

    def _prefill_prefix(self, ids: list[int]):
        import torch
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        tensor = torch.tensor([ids], device=self.model.device)
        self.model(input_ids=tensor, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return cache

    def _first_logits(self, prompts: list[list[int]], prefix: int, cached):
        """Prefill every prompt's suffix after the shared prefix: (logits of the last position, cache, mask, last
        positions). Suffixes are left-padded, so the padding sits between the prefix and the suffix."""
        import torch
        from transformers import DynamicCache

        device = self.model.device
        suffixes = [p[prefix:] for p in prompts]
        width = max(len(s) for s in suffixes)
        ids = torch.tensor([[self.pad_id] * (width - len(s)) + s for s in suffixes], device=device)
        own = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in suffixes], device=device)
        if cached is not None:
            cache = copy.deepcopy(cached)
            cache.batch_repeat_interleave(len(prompts))
        else:
            cache = DynamicCache(config=self.model.config)
        mask = torch.cat([torch.ones(len(prompts), prefix, dtype=own.dtype, device=device), own], dim=1)
        positions = (prefix + own.cumsum(-1) - 1).clamp_min(0)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :].float(), cache, mask, positions[:, -1]

    def _decode_mask(self, mask):
        """One query token per row: with SDPA, the 4D boolean mask is just the 2D one (True = attend), passed
        ready-made so transformers skips building it every step (a few ms of a tiny model's step)."""
        if getattr(self.model.config, "_attn_implementation", None) in ("sdpa", GROUPED_SDPA):
            return mask.bool()[:, None, None, :]
        return mask

    def _pick(self, logits, sampling: Sampling):
        import torch

        if sampling.greedy:
            return logits.argmax(dim=-1)
        from transformers.generation.logits_process import (
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        scores = TemperatureLogitsWarper(sampling.temperature)(None, logits)
        if sampling.top_k:
            scores = TopKLogitsWarper(sampling.top_k)(None, scores)
        if sampling.top_p < 1.0:
            scores = TopPLogitsWarper(sampling.top_p)(None, scores)
        # inverse-CDF draw, one uniform per row: the first token whose cumulative probability exceeds u picks
        # token i with probability p_i (as torch.multinomial(p, 1) does) at ~1/20 of its CPU cost over a 49k
        # vocabulary; right=True never lands on a token of probability 0 (filtered by top-k / top-p)
        cdf = torch.softmax(scores, dim=-1).cumsum(dim=-1)
        u = torch.rand(cdf.shape[0], 1, device=cdf.device) * cdf[:, -1:]
        return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_max(cdf.shape[1] - 1)


class _Running:
    """Continuous batching over one ``Generator.generate`` call: the rows decoding now share one cache, and as
    rows finish, waiting prompts are prefilled (only their suffix after the shared prefix) and merged into it,
    so a batch is never held by its longest row. Rows are left-padded to a common cache width; positions are
    explicit per row and the 2D mask hides the padding, so a row's logits do not depend on its neighbours."""

    def __init__(self, engine: Generator, prompts, prefix: int, cached, n: int, per_batch: int):
        self.engine, self.prompts, self.prefix, self.cached = engine, prompts, prefix, cached
        self.n, self.cap = n, per_batch * n
        self.cache = self.mask = self.last = self.logits = None
        self.alive: list[tuple[int, int]] = []  # batch position -> (prompt index, sample index)

    def decode(self, order: list[int], max_new_tokens: int, eos: set, stops: StopStrings, sampling: Sampling):
        """Every (prompt, sample) row's new token ids, each ending at EOS, its stop string or the budget."""
        waiting = deque(order)
        generated: dict[tuple[int, int], list[int]] = {(i, k): [] for i in order for k in range(self.n)}
        tails = dict.fromkeys(generated, "")
        self.admit(waiting, max_new_tokens)
        while self.alive and max_new_tokens > 0:
            tokens = self.engine._pick(self.logits, sampling)
            keep = []
            for j, token in enumerate(tokens.tolist()):
                row = self.alive[j]
                ids = generated[row]
                ids.append(token)
                tails[row], stopped = stops.hit(tails[row], token, ids)
                if not (token in eos or stopped or len(ids) >= max_new_tokens):
                    keep.append(j)
            self.engine.last_stats["steps"] += 1
            self.step(keep, tokens)
            self.admit(waiting, max_new_tokens)
        return generated

    def admit(self, waiting: deque, budget: int) -> None:
        """Prefill as many waiting prompts as there are free rows (n rows each) and merge them in."""
        import torch

        free = (self.cap - len(self.alive)) // self.n
        # refill once half the rows are free, not at every finished row: a prefill of one or two prompts costs
        # nearly a full forward, and rows of similar length finish a step or two apart
        if self.alive and (not self.engine.refill or free * self.n < max(self.n, self.cap // 2)):
            return
        take = [waiting.popleft() for _ in range(min(free, len(waiting)))]
        if not take:
            return
        stats = self.engine.last_stats
        stats["prefills"] += 1
        stats["refills"] += bool(self.alive)
        logits, cache, mask, last = self.engine._first_logits(
            [self.prompts[i] for i in take], self.prefix, self.cached
        )
        if self.n > 1:
            cache.batch_repeat_interleave(self.n)
            logits, mask, last = (t.repeat_interleave(self.n, dim=0) for t in (logits, mask, last))
        rows = [(i, k) for i in take for k in range(self.n)]
        if self.cache is None:
            if self.engine.grow_cache:
                from .growing_cache import grow_in_place

                grow_in_place(cache, budget)  # room for every step the batch can take: no reallocation
            self.cache, self.mask, self.last, self.logits, self.alive = cache, mask, last, logits, rows
            return
        width = max(self.mask.shape[1], mask.shape[1])
        pad_old, pad_new = width - self.mask.shape[1], width - mask.shape[1]
        for old, new in zip(self.cache.layers, cache.layers):
            old.keys = torch.cat([_left_pad(old.keys, pad_old), _left_pad(new.keys, pad_new)])
            old.values = torch.cat([_left_pad(old.values, pad_old), _left_pad(new.values, pad_new)])
        self.mask = torch.cat([_left_pad(self.mask, pad_old, dim=1), _left_pad(mask, pad_new, dim=1)])
        self.last, self.logits = torch.cat([self.last, last]), torch.cat([self.logits, logits])
        self.alive += rows

    def step(self, keep: list[int], tokens) -> None:
        """Drop the finished rows, then one decode forward for the rest: their next logits."""
        import torch

        if not keep:
            self.cache, self.alive = None, []
            return
        if len(keep) < len(self.alive):
            index = torch.tensor(keep, device=tokens.device)
            self.cache.batch_select_indices(index)
            tokens, self.mask, self.last = tokens[index], self.mask[index], self.last[index]
            self.alive = [self.alive[j] for j in keep]
            self.trim()
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(self.alive), 1)], dim=1)
        self.last = self.last + 1
        out = self.engine.model(
            input_ids=tokens[:, None],
            attention_mask=self.engine._decode_mask(self.mask),
            position_ids=self.last[:, None],
            past_key_values=self.cache,
            use_cache=True,
        )
        self.logits = out.logits[:, -1, :].float()

    def trim(self) -> None:
        """Cut the leading cache columns that no remaining row attends to (padding left by rows that left)."""
        first = int(self.mask.any(0).int().argmax())
        if first > 0:
            for layer in self.cache.layers:
                if hasattr(layer, "drop_front"):
                    layer.drop_front(first)
                else:
                    layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
            self.mask = self.mask[:, first:]


def _left_pad(tensor, width: int, dim: int = 2):
    """``tensor`` with ``width`` zeros before it along ``dim`` (a cache's sequence axis, or a mask's)."""
    import torch

    if width == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = width
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def cut_text(text: str, stop: list[str]) -> str:
    """The completion as scored: the text before the first stop string (lighteval's cut)."""
    for s in stop:
        text = text.split(s)[0]
    return text
