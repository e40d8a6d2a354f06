"""Answer checking for model outputs: the one scorer that RL rewards, RL validation and evaluation share.

Model output is untrusted text. Nothing here evaluates it: answers are compared as strings first and then
with math-verify (a SymPy parser with signal-based timeouts), on bounded input. Every check is bounded in
input length and time, so a huge or adversarial completion costs at most a few seconds.
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import asdict, dataclass

import regex

MAX_TEXT_CHARS = 16_000  # completions are cut to their last 16k characters before any regex runs
MAX_ANSWER_CHARS = 400  # a boxed answer longer than this is not a math answer; it is scored wrong
PARSE_TIMEOUT_S = 2
REPEAT_CHUNK, REPEAT_TIMES = 5, 5  # a 5+ character chunk repeated 5+ times in a row counts as repetition
_REPEAT_RE = regex.compile(rf"(.{{{REPEAT_CHUNK},}}?)\1{{{REPEAT_TIMES - 1},}}", regex.DOTALL)
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


@dataclass(frozen=True)
class Verdict:
    correct: bool
    answer: str | None  # the extracted answer (last \boxed{} content, or the fallback number)
    n_boxed: int  # how many \boxed{} the text holds
    boxed_first: bool  # the answer is boxed before any reasoning
    repetitive: bool  # a 5+ character chunk repeated 5+ times in a row

    def as_dict(self) -> dict:
        return asdict(self)


def boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` with balanced braces, in order (unclosed boxes are skipped)."""
    text = text[-MAX_TEXT_CHARS:]
    found = []
    for match in _BOX_RE.finditer(text):
        depth, start = 1, match.end()
        for j in range(start, min(len(text), start + MAX_ANSWER_CHARS * 4)):
            ch = text[j]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    found.append(text[start:j])
                    break
    return found


@functools.lru_cache(maxsize=4096)  # the RL reward scores each completion twice (strict and lenient)
def is_repetitive(text: str) -> bool:
    """True when a chunk of 5+ characters repeats 5+ times in a row (bounded by a regex timeout)."""
    try:
        return _REPEAT_RE.search(text[-MAX_TEXT_CHARS:], timeout=0.5) is not None
    except TimeoutError:
        return True  # a text this pathological to scan is degenerate anyway


def _normalise(answer: str) -> str:
    answer = answer.strip().strip("$").strip()
    answer = re.sub(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}", r"\1", answer)
    answer = answer.replace("\\!", "").replace("\\,", "").replace(" ", "").rstrip(".")
    if re.fullmatch(r"-?[\d,]+(\.\d+)?", answer):
        answer = answer.replace(",", "")
        if "." in answer:
            answer = answer.rstrip("0").rstrip(".")
    return answer


def answers_match(predicted: str, gold: str) -> bool:
    """Is ``predicted`` the same answer as ``gold``? Normalised string equality, then math-verify (bounded)."""
    if predicted is None or len(predicted) > MAX_ANSWER_CHARS:
        return False
    pred, ref = _normalise(predicted), _normalise(gold)
    if not pred:
        return False
    if pred == ref:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False  # math-verify's timeouts use SIGALRM, which only the main thread may set
    from math_verify import parse, verify

    try:
        gold_parsed = parse(f"${ref}$", parsing_timeout=PARSE_TIMEOUT_S)
        pred_parsed = parse(f"${pred}$", parsing_timeout=PARSE_TIMEOUT_S)
        return bool(
            gold_parsed and pred_parsed and verify(gold_parsed, pred_parsed, timeout_seconds=PARSE_TIMEOUT_S)
        )
    except Exception:  # a parser failure on untrusted text is a wrong answer, not a crash
        return False


def score(text: str, gold: str, *, require_boxed: bool = True) -> Verdict:
    """Score one completion against the gold answer.

    The answer is the last ``\\boxed{}``. With ``require_boxed=False`` a completion without a box falls back to
    its last number (lenient; the demo pilot found this rewards degenerate number strings, so it is off by default).
    """
    text = text[-MAX_TEXT_CHARS:] if text else ""
    boxes = boxed_contents(text)
    answer = boxes[-1] if boxes else None
    if answer is None and not require_boxed:
        numbers = _NUMBER_RE.findall(text)
        answer = numbers[-1] if numbers else None
    first_box = _BOX_RE.search(text)
    boxed_first = bool(first_box) and len(text[: first_box.start()].strip()) < 20
    return Verdict(
        correct=answer is not None and answers_match(answer, gold),
        answer=answer,
        n_boxed=len(boxes),
        boxed_first=boxed_first,
        repetitive=is_repetitive(text),
    )
