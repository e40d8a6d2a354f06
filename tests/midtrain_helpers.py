"""Shared builders for the mid-training tests: real datatrove token shards over real (or generated) text."""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

EOS = "<|end_of_text|>"


def write_shards(
    texts: list[str],
    tokenizer_dir: Path,
    out_dir: Path,
    *,
    eos: bool = True,
    eos_token: str = EOS,
    tasks: int = 1,
    name: str = "docs",
    shuffle: bool = True,
) -> Path:
    """Tokenize ``texts`` with datatrove's own ``DocumentTokenizer`` (JSONL in, ``out_dir/tokens/*.ds`` out).

    ``eos=True`` is datatrove's ``eos_token=`` (an EOS after each document, BOS dropped); ``eos=False`` keeps the
    tokenizer's own post-processor (BOS at each document start, no EOS).
    """
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer

    out_dir = Path(out_dir)
    docs = out_dir / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    per_task = (len(texts) + tasks - 1) // tasks
    for t in range(tasks):
        with (docs / f"{t:03d}.jsonl").open("w") as f:
            for i, text in enumerate(texts[t * per_task : (t + 1) * per_task]):
                f.write(json.dumps({"id": f"{t}-{i}", "text": text}) + "\n")
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(docs)),
            DocumentTokenizer(
                output_folder=str(out_dir / "tokens"),
                local_working_dir=str(out_dir / "tok_tmp"),
                tokenizer_name_or_path=str(Path(tokenizer_dir) / "tokenizer.json"),
                eos_token=eos_token if eos else None,
                save_filename=name,
                shuffle_documents=shuffle,
                seed=7,
            ),
        ],
        tasks=tasks,
        workers=1,
        logging_dir=str(out_dir / "logs"),
    ).run()
    return out_dir / "tokens"


def qa_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(0, 50), rng.randint(0, 50)
        out.append(
            f"Question: What is {a} + {b}?\nAnswer: {a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}."
        )
    return out


def instruction_texts(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        out.append(
            "Instruction: Solve the problem step by step and put the final answer in \\boxed{}.\n"
            f"Question: What is {a} * {b}?\nAnswer: Let's think step by step. {a} * {b} = {a * b}. "
            f"The answer is \\boxed{{{a * b}}}."
        )
    return out


def build_corpora(root: Path, tokenizer_dir: Path) -> dict[str, Path]:
    """Four small token folders like the demo's: web (non-math wiki), math web, QA, instruction."""
    from octo.assets import wiki_summaries

    web = [r["extract"] for r in wiki_summaries(exclude_topic="Mathematics")[:300]]
    math = [r["extract"] for r in wiki_summaries(topic="Mathematics")[:120]]
    return {
        "web": write_shards(web, tokenizer_dir, root / "web", tasks=2),
        "mathweb": write_shards(math, tokenizer_dir, root / "mathweb"),
        "qa": write_shards(qa_texts(300), tokenizer_dir, root / "qa"),
        "instr": write_shards(instruction_texts(40), tokenizer_dir, root / "instr"),
    }


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tiny_config(out: Path, model: Path, sources: dict[str, Path], **changes) -> dict:
    """A small but complete midtrain config dict (seq 32, 4 sequences per step)."""
    config = {
        "name": "t",
        "output_dir": str(out),
        "seed": 0,
        "model": {"base": str(model)},
        "data": {
            "sequence_length": 32,
            "stages": {
                "main": {
                    "tokens": 32 * 4 * 12,
                    "mixture": {n: {"path": str(p), "weight": w} for n, (p, w) in sources.items()},
                }
            },
        },
        "schedule": {"lr": 3e-3, "warmup_tokens": 32 * 4 * 2, "decay": "cosine", "min_lr_ratio": 0.1},
        "train": {
            "global_batch_tokens": 32 * 4,
            "micro_batch_size": 2,
            "log_every": 2,
            "checkpoint_every": 4,
            "progress": False,
        },
    }
    for dotted, value in changes.items():
        node = config
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    return config
