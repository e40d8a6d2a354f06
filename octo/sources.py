"""Item sources: one vocabulary for where corpus documents, RL prompts and evaluation items come from.

Every stage names a source by one of these words (``type:`` of a corpus source, ``source:`` of RL prompts,
RL validation sets and evaluation tasks); each stage accepts the subset it can read.

| name              | what                                                                  | corpus | RL | eval |
| ----------------- | --------------------------------------------------------------------- | ------ | -- | ---- |
| `jsonl`           | a local JSONL file (or, for the corpus, a folder of them)             | yes    | yes| yes  |
| `parquet`         | a local Parquet file                                                  | yes    | yes|      |
| `hub`             | a Hugging Face Hub dataset (``datasets.load_dataset``)                | yes    | yes|      |
| `benchmark`       | an evaluation set of ``octo.assets.BENCHMARKS`` (gsm8k, math500, ...) |        | yes| yes  |
| `gsm8k_offline`   | the 100 GSM8K test problems shipped offline (``octo.assets``)         | yes    |    | yes  |
| `reasoning_gym`   | seeded problems from a reasoning-gym generator                        | yes    | yes| yes  |
| `wiki`            | offline Wikipedia leads (``octo.assets``)                             | yes    |    |      |
| `champ_problems`  | the CHAMP competition problems (``octo.assets``)                      | yes    |    |      |
| `champ_solutions` | model solutions to the CHAMP problems (``octo.assets``)               | yes    |    |      |
| `arithmetic`      | left-to-right worked arithmetic (``pipelines.sources``)               | yes    |    |      |
"""

from __future__ import annotations

from typing import Literal

JSONL = "jsonl"
PARQUET = "parquet"
HUB = "hub"
BENCHMARK = "benchmark"
GSM8K_OFFLINE = "gsm8k_offline"
REASONING_GYM = "reasoning_gym"
WIKI = "wiki"
CHAMP_PROBLEMS = "champ_problems"
CHAMP_SOLUTIONS = "champ_solutions"
ARITHMETIC = "arithmetic"

SOURCES = (
    JSONL,
    PARQUET,
    HUB,
    BENCHMARK,
    GSM8K_OFFLINE,
    REASONING_GYM,
    WIKI,
    CHAMP_PROBLEMS,
    CHAMP_SOLUTIONS,
    ARITHMETIC,
)
FILE_SOURCES = (JSONL, PARQUET)  # read from a path
# what each stage reads (its config's Literal): a subset of SOURCES
RL_SOURCES = (JSONL, PARQUET, HUB, REASONING_GYM, BENCHMARK)
EVAL_SOURCES = (BENCHMARK, JSONL, GSM8K_OFFLINE, REASONING_GYM)
# corpus sources built from installed packages (pipelines.sources.offline_records), no path and no network
CORPUS_OFFLINE_SOURCES = (WIKI, CHAMP_PROBLEMS, CHAMP_SOLUTIONS, GSM8K_OFFLINE, REASONING_GYM, ARITHMETIC)

RLSource = Literal[RL_SOURCES]
EvalSource = Literal[EVAL_SOURCES]
