"""Answer-checking speed: the project's scorer (``octo.scoring.score``) against math-verify's own parse + verify.

Both sides check the same completions against the same gold answers in the same process, one after the
other. math-verify is used as its README shows: ``verify(parse(f"${gold}$"), parse(completion))`` with its
default extraction and (SIGALRM) timeouts, in the main thread. The project's scorer finds the last
``\\boxed{}`` itself and sends only what it cannot settle as strings or plain numbers to its math-verify worker
process (started and warmed before timing; its verdict cache is cleared before each timed pass).

Inputs, in two parts reported separately:

* realistic: a GRPO run's completions (``--run runs/<study>/rl/<arm>``: its ``samples.jsonl`` joined to
  ``prompts.jsonl`` for the gold answers) or, without ``--run``, a GRPO-like set built from the shipped GSM8K
  and MATH500 test items: per problem a group of 8 completions (worked solution + right box, wrong box,
  equivalent form, no box, two boxes, boxed first then repetition, truncated, plain wrong). Verdict agreement
  with math-verify is reported on this part, overall and on completions that hold a box.
* pathological: power towers, huge factorials, a 20k-digit integer, 10k nested braces, regex-bomb shapes,
  macro definitions, 40k characters of repetition after an early box, a megabyte of text.

    .venv/bin/python benchmarks/scoring.py [--problems 150] [--run runs/demo/rl/base] [--repeats 3]

Timings on shared machines are noisy: compare the two columns of one run.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's packages
from octo import scoring
from octo.assets import benchmark_items
from octo.jsonl import read_jsonl


def _clean(solution: str) -> str:
    return re.sub(r"<<[^<>]*>>", "", solution).strip()


def _wrong(answer: str, rng: random.Random) -> str:
    if re.fullmatch(r"-?\d+", answer):
        return str(int(answer) + rng.choice([-10, -2, -1, 1, 2, 3, 10]))
    return rng.choice([answer + "+1", "2" + answer, r"\frac{1}{3}", "0", "-" + answer])


def _equivalent(answer: str) -> str:
    """The same answer written another way (a decimal point, thousands commas, \\dfrac, spaces)."""
    if re.fullmatch(r"-?\d+", answer):
        return f"{answer}.0" if len(answer) < 4 else f"{int(answer):,}"
    return answer.replace(r"\frac", r"\dfrac") if r"\frac" in answer else f" {answer} "


def grpo_like(problems: int, seed: int = 0) -> list[tuple[str, str]]:
    """(completion, gold) pairs shaped like a GRPO rollout batch on GSM8K and MATH500 problems."""
    rng = random.Random(seed)
    items = benchmark_items("gsm8k", source="local")[: problems // 2]
    items += benchmark_items("math500", source="local")[: problems - len(items)]
    out = []
    for item in items:
        gold, steps = str(item["answer"]), _clean(item.get("solution") or "")
        steps = re.sub(r"\\boxed\{", r"\\text{", steps)  # MATH solutions box their answer: keep one box
        wrong = _wrong(gold, rng)
        out += [
            (f"{steps}\nThe answer is \\boxed{{{gold}}}.", gold),
            (f"{steps}\nThe answer is \\boxed{{{wrong}}}.", gold),
            (f"{steps}\nSo the final answer is $\\boxed{{{_equivalent(gold)}}}$.", gold),
            (f"{steps}\nThe answer is {gold}.", gold),  # no box
            (f"First I guess \\boxed{{{wrong}}}. {steps}\nSo it is \\boxed{{{gold}}}.", gold),
            (f"\\boxed{{{gold}}} " + "so the answer is the answer " * rng.randint(20, 200), gold),
            (steps[: max(1, len(steps) // 2)], gold),  # truncated
            (f"Let me think. {steps[: len(steps) // 3]} Therefore the result is \\boxed{{{wrong}}}.", gold),
        ]
    return out


def from_run(run: Path) -> list[tuple[str, str]]:
    gold = {row["id"]: str(row["answer"]) for row in read_jsonl(run / "prompts.jsonl")}
    return [(row["text"], gold[row["prompt_id"]]) for row in read_jsonl(run / "samples.jsonl")]


def pathological() -> list[tuple[str, str]]:
    answers = [
        r"2^{2^{2^{2^{2^{2}}}}}", r"9^{9^{9^{9}}}", "1000000!", r"(10^{10})!", "7" * 20_000,
        "{" * 10_000 + "7" + "}" * 10_000, r"\def\x{\x\x}\x", r"\newcommand{\a}{\a\a}\a",
        "(" * 5_000 + "a" * 5_000, r"\left(" * 300 + "1" + r"\right)" * 300,
    ]  # fmt: skip
    cases = [(f"The answer is \\boxed{{{a}}}.", "7") for a in answers]
    cases.append(("\\boxed{42} " + "so so so so so " * 2000, "42"))  # 8k tokens of repetition
    cases.append(("We add. " * 131_072 + "\\boxed{42}", "42"))  # a megabyte
    return cases


def project_pass(cases):
    scoring._CACHE.clear()
    start = time.perf_counter()
    verdicts = [scoring.score(text, gold).correct for text, gold in cases]
    return time.perf_counter() - start, verdicts


def math_verify_pass(cases):
    from math_verify import parse, verify

    start = time.perf_counter()
    verdicts = []
    for text, gold in cases:
        try:
            verdicts.append(bool(verify(parse(f"${gold}$"), parse(text))))
        except Exception:
            verdicts.append(False)
    return time.perf_counter() - start, verdicts


def measure(name: str, cases, repeats: int) -> dict:
    ours, theirs = [], []
    for _ in range(repeats):
        t, our_verdicts = project_pass(cases)
        ours.append(t)
        t, mv_verdicts = math_verify_pass(cases)
        theirs.append(t)
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    boxed = [i for i, (text, _) in enumerate(cases) if "\\boxed{" in text]
    return {
        "part": name,
        "completions": len(cases),
        "octo_per_s": len(cases) / ours_s,
        "math_verify_per_s": len(cases) / theirs_s,
        "speedup": theirs_s / ours_s,
        "octo_worst_s": None,
        "agree": sum(a == b for a, b in zip(our_verdicts, mv_verdicts)) / len(cases),
        "agree_boxed": sum(our_verdicts[i] == mv_verdicts[i] for i in boxed) / len(boxed) if boxed else None,
        "octo_correct": sum(our_verdicts),
        "math_verify_correct": sum(mv_verdicts),
    }


def worst_case(cases) -> float:
    worst = 0.0
    for text, gold in cases:
        scoring._CACHE.clear()
        start = time.perf_counter()
        scoring.score(text, gold)
        worst = max(worst, time.perf_counter() - start)
    return worst


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--problems", type=int, default=150, help="GSM8K + MATH500 problems (x8 completions)")
    parser.add_argument(
        "--run", type=Path, help="an RL run folder: use its samples.jsonl as the realistic part"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    scoring.answers_match(r"\frac{1}{2}", "0.5")  # start the worker (its import is not timed)
    realistic = from_run(args.run) if args.run else grpo_like(args.problems)
    results = [measure("realistic", realistic, args.repeats), measure("pathological", pathological(), 1)]
    results[1]["octo_worst_s"] = worst_case(pathological())
    results[0]["octo_worst_s"] = worst_case(realistic[:400])
    print(f"{'part':<13}{'n':>6}{'octo/s':>10}{'math-verify/s':>15}{'speedup':>9}{'agree':>8}{'agree boxed':>13}"
          f"{'octo worst s':>14}")  # fmt: skip
    for r in results:
        boxed = f"{r['agree_boxed']:.3f}" if r["agree_boxed"] is not None else "-"
        print(f"{r['part']:<13}{r['completions']:>6}{r['octo_per_s']:>10.0f}{r['math_verify_per_s']:>15.1f}"
              f"{r['speedup']:>8.1f}x{r['agree']:>8.3f}{boxed:>13}{r['octo_worst_s']:>14.2f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
