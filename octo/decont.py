"""Decontamination by question text: normalised questions and word n-grams of evaluation items, and a match.

RL prompts are checked against the evaluation sets with this index (``rl.prompts.decontaminate``). The corpus
stage removes contaminated documents with datatrove's hashed n-gram index and filter instead
(``pipelines.steps.NGramIndexBuilder``, ``NGramsDecontFilter``), whose index format its filter reads.
"""

from __future__ import annotations

import re
import unicodedata

_SENTENCE_PUNCTUATION = set(".,;:!?\"'`")


def normalise_question(text: str) -> str:
    """The form questions are compared in: NFKC, lower case, every symbol its own word, sentence punctuation
    dropped (math symbols such as + - = ^ are kept: "2 + 3" and "2 - 3" differ), whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    words = re.sub(r"([^\w\s])", r" \1 ", text).split()
    return " ".join(w for w in words if w not in _SENTENCE_PUNCTUATION)


def word_ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)} if n and len(words) >= n else set()


class EvalIndex:
    """Normalised questions and word n-grams of the evaluation items, with the id they came from."""

    def __init__(self, ngram: int):
        self.ngram = ngram
        self.exact: dict[str, str] = {}
        self.grams: dict[tuple[str, ...], str] = {}
        self.sizes: dict[str, int] = {}

    def add(self, name: str, items: list[dict]) -> None:
        self.sizes[name] = len(items)
        for item in items:
            norm = normalise_question(item["question"])
            if not norm:
                continue
            tag = f"{name}:{item['id']}"
            self.exact.setdefault(norm, tag)
            for gram in word_ngrams(norm.split(), self.ngram):
                self.grams.setdefault(gram, tag)

    def match(self, question: str) -> tuple[str, str] | None:
        """(how, eval item) when ``question`` appears in the index, else None."""
        norm = normalise_question(question)
        if norm in self.exact:
            return "exact", self.exact[norm]
        for gram in word_ngrams(norm.split(), self.ngram):
            if gram in self.grams:
                return f"{self.ngram}-gram", self.grams[gram]
        return None
