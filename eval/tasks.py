"""Project tasks for lighteval: items from local sources, prompt styles, exemplars, and the task config.

Items come from four sources, all normalised to ``{id, question, answer, solution?, choices?}``:
``benchmark`` (``octo.assets.benchmark_items``: the local benchmark folder, or the hub when online), ``jsonl``
(any local file of question/answer rows), ``gsm8k_offline`` (100 GSM8K test problems shipped offline) and
``reasoning_gym`` (seeded generated problems).

Few-shot exemplars are fixed: either the first items of the source whose solution is short enough (then they
are removed from the scored items) or, for generated problems, items from a second seed. Scored items whose
question equals an exemplar's are dropped too, so no exemplar is ever scored.

The items live in memory: each task's ``hf_repo`` is an ``octo-mem://`` key that ``download_dataset_worker``
(patched once, see ``install_lighteval_patches``) resolves to an in-memory DatasetDict. That skips datasets'
file cache and fingerprinting on every run.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from octo import assets, sources, templates
from octo.config import ConfigError
from octo.jsonl import read_jsonl

from .config import SuiteConfig, TaskConfig

LETTERS = "ABCDEFGHIJ"
# Prompt styles are the names of octo.templates (prompt text + stop strings, shared with RL); "chat" is lighteval's
# chat-template path (model.chat_template), so a suite names "custom" with "{question}" for it (see eval.config).
# Exemplar answers are built by ``exemplar_answer``.
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations: "2*3=<<2*3=6>>6"


@dataclass
class TaskItems:
    """The scored items and the exemplars of one task, with what was set aside."""

    items: list[dict]
    exemplars: list[dict]
    dropped_as_exemplar: int = 0
    available: int = 0  # items before the max_items cut


# --------------------------------------------------------------------------------------------- items
def _generated_solution(item: dict) -> dict:
    """reasoning-gym arithmetic: the worked step is "<expression> = <answer>"."""
    expression = (item.get("metadata") or {}).get("expression")
    out = {"id": item["id"], "question": item["question"], "answer": str(item["answer"])}
    if expression:
        out["solution"] = f"{expression} = {item['answer']}"
    return out


def _jsonl_items(path: str, label: str) -> list[dict]:
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"task {label}: jsonl file not found: {file}")
    rows = []
    for lineno, row in enumerate(read_jsonl(file), 1):
        if not isinstance(row, dict) or "question" not in row or "answer" not in row:
            raise ConfigError(f"{file}:{lineno}: each row needs 'question' and 'answer' fields")
        item = {"id": str(row.get("id", f"{file.stem}-{lineno - 1}")), "question": str(row["question"])}
        item["answer"] = str(row["answer"])
        if row.get("solution"):
            item["solution"] = str(row["solution"])
        if row.get("choices"):
            item["choices"] = list(row["choices"])
        rows.append(item)
    return rows


def source_items(task: TaskConfig, suite: SuiteConfig) -> list[dict]:
    if task.source == sources.BENCHMARK:
        name = task.benchmark or task.name
        if name not in assets.BENCHMARKS:
            raise ConfigError(
                f"task {task.name}: unknown benchmark '{name}' (known: {', '.join(sorted(assets.BENCHMARKS))})"
            )
        return assets.benchmark_items(name, source=suite.benchmark_source, root=suite.benchmarks_dir)
    if task.source == sources.JSONL:
        return _jsonl_items(task.path, task.name)
    if task.source == sources.GSM8K_OFFLINE:
        return assets.gsm8k_offline()
    items = assets.reasoning_gym_items(task.generator, task.size, seed=task.seed, **task.options)
    return [_generated_solution(x) for x in items]


def _fewshot_pool(task: TaskConfig, items: list[dict]) -> tuple[list[dict], list[dict]]:
    """(exemplars, remaining items). Held-out exemplars must carry a short solution (not needed for mc)."""
    if task.fewshot == 0:
        return [], items
    if task.source == sources.REASONING_GYM and task.fewshot_seed is not None:
        generated = assets.reasoning_gym_items(
            task.generator, task.fewshot, seed=task.fewshot_seed, **task.options
        )
        return [_generated_solution(x) for x in generated], items
    if task.source == sources.JSONL and task.fewshot_path:
        return _jsonl_items(task.fewshot_path, task.name)[: task.fewshot], items
    needs_solution = task.prompt != "mc"
    chosen = [
        i
        for i, x in enumerate(items)
        if not needs_solution or (x.get("solution") and len(x["solution"]) <= task.fewshot_max_chars)
    ][: task.fewshot]
    if len(chosen) < task.fewshot:
        raise ConfigError(
            f"task {task.name}: only {len(chosen)} items have a solution of at most {task.fewshot_max_chars} "
            f"characters; lower fewshot or raise fewshot_max_chars"
        )
    taken = set(chosen)
    return [items[i] for i in chosen], [x for i, x in enumerate(items) if i not in taken]


def task_items(task: TaskConfig, suite: SuiteConfig) -> TaskItems:
    """The task's scored items (exemplars removed, max_items applied) and its exemplars."""
    items = source_items(task, suite)
    if not items:
        raise ConfigError(f"task {task.name}: the source gave no items")
    exemplars, rest = _fewshot_pool(task, items)
    if len(exemplars) < task.fewshot:
        raise ConfigError(f"task {task.name}: wanted {task.fewshot} exemplars, found {len(exemplars)}")
    shown = {x["question"].strip() for x in exemplars}
    kept = [x for x in rest if x["question"].strip() not in shown]
    cut = kept[: task.max_items] if task.max_items else kept
    if not cut:
        raise ConfigError(f"task {task.name}: no items left to score after removing the exemplars")
    return TaskItems(
        items=cut, exemplars=exemplars, dropped_as_exemplar=len(rest) - len(kept), available=len(kept)
    )


# ------------------------------------------------------------------------------------------- prompts
def _choices(item: dict) -> list[str]:
    choices = item.get("choices")
    if isinstance(choices, str):  # some sources store the list as its repr or as "a ) x , b ) y"
        try:
            choices = json.loads(choices.replace("'", '"'))
        except json.JSONDecodeError:
            choices = [choices]
    return [str(c) for c in choices or []]


def question_text(style: str, template: str | None, item: dict) -> str:
    """The query for one item: ``octo.templates.render``, the same text RL renders for that template name."""
    choices = ""
    if style == "mc":
        choices = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(_choices(item)))
    return templates.render(style, item["question"], text=template, choices=choices)


def exemplar_answer(style: str, item: dict) -> str:
    """The worked answer an exemplar shows after the question (lighteval joins them with a space)."""
    solution = _CALCULATOR.sub("", item.get("solution") or "").strip()
    answer = item["answer"]
    if style == "qa":
        return f"{solution} The answer is {answer}.".strip()
    if style == "minerva":
        return f"{solution}\nFinal Answer: The final answer is ${answer}$. I hope it is correct.".strip()
    if style == "mc":
        return f"The answer is ({answer})."
    # qa_boxed, orz, custom: the RL answer format
    steps = f"{solution.rstrip('. ')}. " if solution else ""
    return f"{steps}The answer is \\boxed{{{answer}}}."


def gold_text(metric: str, item: dict) -> str:
    """The gold string the metric extracts from: LaTeX golds are boxed so lighteval parses them as LaTeX."""
    if metric == "latex":
        return f"\\boxed{{{item['answer']}}}"
    return str(item["answer"])


class PromptFunction:
    """lighteval prompt function: dataset row -> Doc (exemplar rows carry their worked answer as the gold)."""

    def __init__(self, style: str, template: str | None, metric: str):
        self.style, self.template, self.metric = style, template, metric

    def __call__(self, line: dict, task_name: str | None = None):
        from lighteval.tasks.requests import Doc

        item = json.loads(line["item"])
        query = question_text(self.style, self.template, item)
        if line.get("__few_shots"):
            return Doc(
                task_name=task_name, query=query, choices=[exemplar_answer(self.style, item)], gold_index=0
            )
        if self.metric == "letter":
            letters = list(LETTERS[: max(len(_choices(item)), 1)])
            gold = str(item["answer"]).strip().upper()
            if gold not in letters:
                raise ConfigError(
                    f"item {item['id']}: answer {gold!r} is not one of the choice letters {letters}"
                )
            return Doc(task_name=task_name, query=query, choices=letters, gold_index=letters.index(gold))
        return Doc(task_name=task_name, query=query, choices=[gold_text(self.metric, item)], gold_index=0)


# --------------------------------------------------------------------------------- lighteval glue
_DATASETS: dict[str, object] = {}  # octo-mem:// key -> DatasetDict
_KEYS = itertools.count()
ORIGINALS: dict[str, object] = {}  # lighteval's own functions, kept for tests that show why the patches exist


def install_lighteval_patches() -> None:
    """Three process-wide patches, each falling through to lighteval's own code for anything not ours.

    * ``Registry.load_all_task_configs``: for a task module marked ``OCTO_ONLY`` load just that module, not the
      ~96 built-in task modules (one of them downloads a file from GitHub at import time, others break with
      huggingface_hub 2.x, and the scan costs ~0.6 s per Pipeline).
    * ``LightevalTask.download_dataset_worker``: ``octo-mem://`` repos resolve to in-memory datasets.
    * ``GenerativeTaskDataset._sorting_criteria``: lighteval sorts prompts by the *character* length of the raw
      question, then cuts every prompt of a split to the *token* length of the first one (+ generation size).
      When character and token order disagree, longer prompts are silently cut (seen on Minerva-Math at
      0-shot). Docs that carry their full prompt's token count (``specific["octo_prompt_tokens"]``, set by the
      runner) are sorted by it instead, so the first prompt of a split is the longest.
    """
    if ORIGINALS:
        return
    from lighteval.data import GenerativeTaskDataset
    from lighteval.tasks.lighteval_task import LightevalTask
    from lighteval.tasks.registry import Registry

    original_sort = ORIGINALS["sorting_criteria"] = GenerativeTaskDataset._sorting_criteria
    original_load = ORIGINALS["load_all_task_configs"] = Registry.load_all_task_configs
    original_download = ORIGINALS["download_dataset_worker"] = LightevalTask.download_dataset_worker

    def load_all_task_configs(custom_tasks=None, load_multilingual=False):
        if custom_tasks is not None and getattr(custom_tasks, "OCTO_ONLY", False):
            return Registry._extract_configs(custom_tasks)
        return original_load(custom_tasks=custom_tasks, load_multilingual=load_multilingual)

    def download_dataset_worker(task):
        if str(task.dataset_path).startswith("octo-mem://"):
            return _DATASETS[task.dataset_path]
        return original_download(task)

    def sorting_criteria(self, doc):
        key = original_sort(self, doc)
        tokens = (doc.specific or {}).get("octo_prompt_tokens")
        return key if tokens is None else (*key[:-1], -(tokens + (doc.generation_size or 0)))

    GenerativeTaskDataset._sorting_criteria = sorting_criteria
    Registry.load_all_task_configs = staticmethod(load_all_task_configs)
    LightevalTask.download_dataset_worker = staticmethod(download_dataset_worker)


def register_items(task_items_: TaskItems) -> str:
    """Put the items in memory as a DatasetDict (split "test"; exemplars in "fewshot"); return its key."""
    from datasets import Dataset, DatasetDict

    def rows(items):  # one JSON column: item fields differ between sources and arrow wants one schema
        return {"item": [json.dumps(x, default=str) for x in items]}

    splits = {"test": Dataset.from_dict(rows(task_items_.items))}
    if task_items_.exemplars:
        splits["fewshot"] = Dataset.from_dict(rows(task_items_.exemplars))
    key = f"octo-mem://{next(_KEYS)}"
    _DATASETS[key] = DatasetDict(splits)
    return key


def release_items(key: str) -> None:
    _DATASETS.pop(key, None)


def lighteval_task_config(task: TaskConfig, key: str, metric, max_new_tokens: int, has_fewshot: bool):
    """A LightevalTaskConfig over the in-memory items: fixed (sequential) exemplars, task-level generation size."""
    from lighteval.tasks.lighteval_task import LightevalTaskConfig

    return LightevalTaskConfig(
        name=f"octo_{task.name}",
        prompt_function=PromptFunction(task.prompt, task.template, task.metric),
        hf_repo=key,
        hf_subset="default",
        metrics=[metric],
        hf_avail_splits=["test", "fewshot"] if has_fewshot else ["test"],
        evaluation_splits=["test"],
        few_shots_split="fewshot" if has_fewshot else "test",  # never read at 0-shot
        few_shots_select="sequential",
        generation_size=max_new_tokens,
        stop_sequence=stop_sequences(task),
        version=0,
    )


def stop_sequences(task: TaskConfig) -> list[str]:
    return list(task.stop) if task.stop is not None else templates.stop_strings(task.prompt)
