"""Offline document sources for the demo corpora, and the templates that turn records into documents.

Every source yields plain records (dicts). A ``Formatter`` renders a record into document text with a named
template (``text``, ``qa``, ``instruction``, ``cot``) or a custom one, so QA pairs, instruction data and long
chain-of-thought solutions all become ``Question: ...\\nAnswer: ...``-style documents tagged with their source.

The arithmetic generator writes step-by-step working for reasoning-gym ``basic_arithmetic`` problems; the
working comes from a tiny left-to-right parser of ``metadata["expression"]`` (never ``eval``).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterator
from string import Formatter as _StrFormatter
from typing import Any

from octo import assets

# Named templates. Field names refer to record keys (after ``fields`` renaming).
TEMPLATES: dict[str, str] = {
    "text": "{text}",
    "qa": "Question: {question}\nAnswer: {answer}",
    "instruction": "Instruction: {instruction}\nQuestion: {question}\nAnswer: {answer}",
    "cot": "Question: {question}\nAnswer: {solution}",
}

# Five ways of explaining a left-to-right calculation in prose (no QA format, no \boxed).
PROSE_TEMPLATES = (
    "To work out {expr}, we go from left to right. {steps}. So the value of {expr} is {answer}.",
    "Let us calculate {expr}. {steps}. The result is {answer}.",
    "We want the value of {expr}. Working from left to right: {steps}. Therefore {expr} equals {answer}.",
    "Here is how to compute {expr} step by step. {steps}. This gives {answer}.",
    "Consider the expression {expr}. {steps}. Hence the value of the expression is {answer}.",
)


class FormatError(ValueError):
    """A record that cannot be rendered (missing or empty field); the message is the drop reason."""


class Formatter:
    """Render records into document text with a template; picklable (runs inside datatrove tasks)."""

    def __init__(self, template: str, fields: dict[str, str] | None = None, constants: dict | None = None):
        self.template = template
        self.fields = dict(fields or {})
        self.constants = dict(constants or {})
        self.names = [name for _, name, _, _ in _StrFormatter().parse(template) if name]

    def render(self, record: dict[str, Any]) -> str:
        values = {}
        for name in self.names:
            if name in self.constants:
                values[name] = self.constants[name]
                continue
            key = self.fields.get(name, name)
            value = record.get(key)
            if value is None:
                raise FormatError(f"missing_{key}")
            if not isinstance(value, str):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    value = str(value)
                else:
                    raise FormatError(f"not_text_{key}")
            if not value.strip():
                raise FormatError(f"empty_{key}")
            values[name] = value.strip() if name != "text" else value
        return self.template.format_map(values)


# ------------------------------------------------------------------------------------------- arithmetic
_TOKEN = re.compile(r"\s*(\d+|[+\-])")


def parse_expression(expression: str) -> tuple[int, list[tuple[str, int]]]:
    """'3 + 14 - -5' -> (3, [('+', 14), ('-', -5)]): integers (optionally negative) joined by + and -."""
    tokens, pos = [], 0
    text = expression.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"cannot parse arithmetic expression {expression!r} at {text[pos:]!r}")
        tokens.append(match.group(1))
        pos = match.end()

    def operand(i: int) -> tuple[int, int]:  # (value, next index); a '-' right before a number negates it
        sign = 1
        if i < len(tokens) and tokens[i] == "-":
            sign, i = -1, i + 1
        if i >= len(tokens) or not tokens[i].isdigit():
            raise ValueError(f"cannot parse arithmetic expression {expression!r}")
        return sign * int(tokens[i]), i + 1

    first, i = operand(0)
    rest = []
    while i < len(tokens):
        op = tokens[i]
        if op not in ("+", "-"):
            raise ValueError(f"cannot parse arithmetic expression {expression!r}")
        number, i = operand(i + 1)
        rest.append((op, number))
    return first, rest


def left_to_right_steps(expression: str) -> tuple[list[str], int]:
    """The working of a +/- expression, one step per operator: (['3 + 14 = 17', '17 - 5 = 12'], 12)."""
    value, rest = parse_expression(expression)
    steps = []
    for op, number in rest:
        new = value + number if op == "+" else value - number
        steps.append(f"{value} {op} {number} = {new}")  # as written: "3 - -7 = 10"
        value = new
    if not steps:
        steps = [f"{value} = {value}"]
    return steps, value


def arithmetic_records(
    size: int, seed: int, mix: list[tuple[float, dict]], prose_seed: int | None = None
) -> list[dict]:
    """``size`` basic_arithmetic problems drawn from a weighted mix of reasoning-gym option sets.

    Each record: {id, question, answer, expression, steps, solution, prose, difficulty}. ``solution`` is
    "<steps>. The answer is \\boxed{a}." and ``prose`` one of five prose explanations (chosen by a seeded RNG).
    """
    total = sum(weight for weight, _ in mix)
    counts = [int(round(size * weight / total)) for weight, _ in mix]
    counts[-1] = size - sum(counts[:-1])
    rng = random.Random(seed if prose_seed is None else prose_seed)
    records = []
    for part, ((_, options), count) in enumerate(zip(mix, counts)):
        if count <= 0:
            continue
        # part i uses seed + i (the recipe checks these stay clear of the RL/evaluation seeds)
        items = assets.reasoning_gym_items("basic_arithmetic", size=count, seed=seed + part, **options)
        for item in items:
            expression = item["metadata"]["expression"]
            steps, value = left_to_right_steps(expression)
            if str(value) != str(item["answer"]).strip():
                raise ValueError(f"{item['id']}: working gives {value}, reasoning-gym says {item['answer']}")
            joined = ". ".join(steps)
            records.append(
                {
                    "id": f"{item['id']}-p{part}",
                    "question": item["question"],
                    "answer": str(value),
                    "expression": expression,
                    "steps": joined,
                    "solution": f"{joined}. The answer is \\boxed{{{value}}}.",
                    "prose": rng.choice(PROSE_TEMPLATES).format(expr=expression, steps=joined, answer=value),
                    "difficulty": part,
                }
            )
    random.Random(seed).shuffle(records)  # interleave the parts
    return records


# ------------------------------------------------------------------------------------------------ wiki
def stable_fraction(key: str) -> float:
    """A deterministic number in [0, 1) from a string (sha1), for reproducible splits."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 2**32


def wiki_records(topic=None, exclude_topic=None, hash_range=(0.0, 1.0), lang="en-us") -> list[dict]:
    low, high = hash_range
    return [
        {"id": f"wiki/{r['title']}", "text": r["extract"], "title": r["title"], "topic": r["topic"]}
        for r in assets.wiki_summaries(lang=lang, topic=topic, exclude_topic=exclude_topic)
        if low <= stable_fraction(r["title"]) < high
    ]


# --------------------------------------------------------------------------------------------- loaders
def offline_records(kind: str, spec: dict) -> Iterator[dict]:
    """Records of one offline source kind (see ``pipelines.recipe`` for the options of each)."""
    if kind == "wiki":
        yield from wiki_records(
            spec.get("topic"), spec.get("exclude_topic"), tuple(spec["hash_range"]), spec["lang"]
        )
    elif kind == "champ_problems":
        for p in assets.champ_problems():
            yield {
                "id": f"champ/{p['id']}",
                "question": p["problem"],
                "answer": p["answer"],
                "solution": p["solution"],
            }
    elif kind == "champ_solutions":
        problems = {p["id"]: p for p in assets.champ_problems()}
        for s in assets.champ_model_solutions(limit=spec.get("size")):
            problem = problems.get(s["problem_id"], {})
            yield {
                "id": f"champ/{s['id']}",
                "question": problem.get("problem"),
                "answer": problem.get("answer"),
                "solution": s["text"],
                "text": s["text"],
            }
    elif kind == "gsm8k_offline":
        for item in assets.gsm8k_offline():
            yield {**item, "solution": f"{item['solution']}\nThe answer is {item['answer']}."}
    elif kind == "reasoning_gym":
        for item in assets.reasoning_gym_items(
            spec["generator"], spec["size"], spec["seed"], **spec["options"]
        ):
            yield {k: v for k, v in item.items() if k != "metadata"}
    elif kind == "arithmetic":
        mix = [(part["weight"], part["options"]) for part in spec["mix"]]
        yield from arithmetic_records(spec["size"], spec["seed"], mix)
    else:
        raise ValueError(f"unknown offline source type {kind!r}")
