"""Answer checking for model outputs: the one scorer that RL rewards, RL validation and evaluation share.

Model output is untrusted text. Nothing here executes it. A completion of any length is scored whole:

* every ``\\boxed{...}`` / ``\\fbox{...}`` whose braces balance within ``MAX_BOX_CHARS`` counts; the last one is
  the answer, and ``boxed_first`` looks at the first one. Braces are matched in one vectorised pass (numpy), so
  a megabyte costs milliseconds, whatever the nesting.
* repetition (a chunk of 5 to ``MAX_PERIOD`` characters repeated 5+ times in a row) is found with rolling
  hashes over aligned blocks, verified exactly, not with a backtracking regex.
* the lenient fallback (the last number) searches from the end of the text.

Answers are compared as normalised strings, then as plain numbers, then with math-verify. math-verify runs
in a separate worker process with its own (SIGALRM) timeouts switched off; the caller kills the worker once
the check has used ``VERIFY_CPU_S`` of the worker's CPU time (or ``VERIFY_WALL_S`` of wall-clock time, a cap
for a starved machine). So the verdict depends neither on the calling thread (SIGALRM only works on the main
thread) nor on how busy the machine is, and a power tower or a huge factorial costs at most the deadline. A
worker parses and verifies a sample before it reports ready, so no check pays math-verify's first-call
warm-up. A timeout or any exception is a wrong answer, never a crash.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

MAX_BOX_CHARS = 1_600  # a box counts when its braces balance within this many characters of content
MAX_ANSWER_CHARS = 400  # a boxed answer longer than this is not a math answer; it is scored wrong
MAX_PERIOD = 2_048  # longest repeated chunk the repetition flag looks for
REPEAT_CHUNK, REPEAT_TIMES = 5, 5  # a 5+ character chunk repeated 5+ times in a row counts as repetition
VERIFY_CPU_S = 1.0  # CPU-time limit of one math-verify check (the worker is killed past it)
VERIFY_WALL_S = 5.0  # wall-clock cap of one check, for a machine so busy that the worker gets little CPU
WORKER_START_S = 60.0  # how long the first check waits for the worker to import math-verify
BOXED_FIRST_CHARS = 20  # the answer is "boxed first" when fewer characters precede the first box
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_NUMBER_CHARS = frozenset("0123456789,.-")
_DECIMAL_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_CPU_POLL_S = 0.01
_HASH_BASE, _HASH_MIX = np.uint64(1_000_003), np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True)
class Verdict:
    correct: bool
    answer: str | None  # the extracted answer (last \boxed{} content, or the fallback number)
    n_boxed: int  # how many \boxed{} the text holds
    boxed_first: bool  # the answer is boxed before any reasoning
    repetitive: bool  # a 5+ character chunk repeated 5+ times in a row


# ------------------------------------------------------------------------------------------- scanning
def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _matching_braces(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positions of matched ``{`` in order, positions of their ``}``): a stack match, done by sorting on depth."""
    pos = np.flatnonzero((codes == 123) | (codes == 125))
    if not len(pos):
        return pos, pos
    is_open = codes[pos] == 123
    depth = np.cumsum(np.where(is_open, 1, -1))
    level = np.where(is_open, depth, depth + 1)  # an open and its close sit on the same level
    order = np.argsort(level, kind="stable")
    lv, op = level[order], is_open[order]
    # after an open at level L, the next event on level L is its close (depth moves in steps of one)
    hit = np.flatnonzero(op[:-1] & ~op[1:] & (lv[:-1] == lv[1:]))
    opens, closes = pos[order[hit]], pos[order[hit + 1]]
    by_open = np.argsort(opens)
    return opens[by_open], closes[by_open]


def _boxes(text: str, codes: np.ndarray) -> list[tuple[int, str]]:
    """(start, content) of every box whose braces balance within MAX_BOX_CHARS, in order."""
    spans = [(m.start(), m.end() - 1) for m in _BOX_RE.finditer(text)]
    if not spans:
        return []
    opens, closes = _matching_braces(codes)
    if not len(opens):
        return []
    braces = np.array([brace for _, brace in spans])
    idx = np.minimum(np.searchsorted(opens, braces), len(opens) - 1)
    ends = closes[idx]
    keep = (opens[idx] == braces) & (ends - braces - 1 <= MAX_BOX_CHARS)
    return [(spans[i][0], text[spans[i][1] + 1 : ends[i]]) for i in np.flatnonzero(keep).tolist()]


def boxed_contents(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` with balanced braces, in order (unclosed boxes are skipped)."""
    return [content for _, content in _boxes(text, _codes(text))] if text else []


def _prefix_hashes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polynomial prefix sums H[i] = sum_{k<i} x_k B^k and the powers B^k, all modulo 2^64."""
    x = codes.astype(np.uint64) * _HASH_MIX + np.uint64(1)
    powers = np.empty(len(codes) + 1, dtype=np.uint64)
    powers[0] = 1
    with np.errstate(over="ignore"):
        powers[1:] = np.cumprod(np.full(len(codes), _HASH_BASE, dtype=np.uint64))
        hashes = np.concatenate(([np.uint64(0)], np.cumsum(x * powers[:-1])))
    return hashes, powers


def _run_at(codes: np.ndarray, p: int, starts: np.ndarray) -> bool:
    """Exact check: does a run of period p and length >= 5p contain 4 equal aligned blocks from each start?"""
    n, k = len(codes), np.arange(p)
    for s in starts.tolist():
        if not np.array_equal(codes[s : s + 3 * p], codes[s + p : s + 4 * p]):
            continue  # a hash collision
        left = np.arange(max(0, s - p), s)
        left_ok = codes[left] == codes[left + p]
        left_run = len(left_ok) - (np.flatnonzero(~left_ok)[-1] + 1 if (~left_ok).any() else 0)
        right = s + 3 * p + k[: max(0, min(p, n - s - 4 * p))]
        right_ok = codes[right] == codes[right + p]
        right_run = np.flatnonzero(~right_ok)[0] if (~right_ok).any() else len(right_ok)
        if left_run + right_run >= p:
            return True
    return False


def _quads_strided(hashes: np.ndarray, powers: np.ndarray, p: int) -> np.ndarray:
    """Starts of 4 equal consecutive blocks aligned on multiples of p (one period, strided views)."""
    with np.errstate(over="ignore"):
        marks = hashes[::p]
        blocks = marks[1:] - marks[:-1]
        eq = blocks[:-1] * powers[p] == blocks[1:]
    return np.flatnonzero(eq[:-2] & eq[1:-1] & eq[2:]) * p


def _quads_batched(hashes: np.ndarray, powers: np.ndarray, ps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(periods, starts) of 4 equal aligned blocks for many periods with few blocks each, in one pass."""
    n = len(hashes) - 1
    counts = n // ps - 1
    counts[counts < 3] = 0
    p_rep = np.repeat(ps, counts)
    s = (np.arange(len(p_rep)) - np.repeat(np.cumsum(counts) - counts, counts)) * p_rep
    with np.errstate(over="ignore"):
        eq = (hashes[s + p_rep] - hashes[s]) * powers[p_rep] == hashes[s + 2 * p_rep] - hashes[s + p_rep]
    quad = np.flatnonzero(eq[:-2] & eq[1:-1] & eq[2:] & (p_rep[:-2] == p_rep[2:]))
    return p_rep[quad], s[quad]


def is_repetitive(text: str, codes: np.ndarray | None = None) -> bool:
    """True when a chunk of 5 to MAX_PERIOD characters repeats 5+ times in a row, anywhere in the text.

    A run of period p and length >= 5p holds 4 equal blocks aligned on multiples of p; those are found by
    comparing rolling hashes of consecutive aligned blocks (n/p comparisons per period, n log P in all), then
    checked exactly on the characters.
    """
    codes = _codes(text) if codes is None else codes
    n = len(codes)
    top = min(MAX_PERIOD, n // REPEAT_TIMES)
    if top < REPEAT_CHUNK:
        return False
    hashes, powers = _prefix_hashes(codes)
    split = max(REPEAT_CHUNK, min(top + 1, n // 256))  # periods below it have many blocks: one pass each
    for p in range(REPEAT_CHUNK, split):
        starts = _quads_strided(hashes, powers, p)
        if len(starts) and _run_at(codes, p, starts):
            return True
    if split > top:
        return False
    periods, starts = _quads_batched(hashes, powers, np.arange(split, top + 1))
    return any(_run_at(codes, p, starts[periods == p]) for p in np.unique(periods).tolist())


def _last_number(text: str) -> str | None:
    """The last match of _NUMBER_RE in the text, searched in growing windows from the end."""
    window = 4096
    while True:
        start = max(0, len(text) - window)
        found = None
        for found in _NUMBER_RE.finditer(text, start):  # noqa: B007 (the last match is the one kept)
            pass
        if start == 0 or (found is not None and text[found.start() - 1] not in _NUMBER_CHARS):
            return found.group() if found is not None else None
        window *= 4


# ------------------------------------------------------------------------------------------- answers
def _normalise(answer: str) -> str:
    # invisible control and format characters (NUL, ANSI escapes' ESC, bidi marks) are no part of an answer
    answer = "".join(c for c in answer if unicodedata.category(c) not in ("Cc", "Cf") or c in "\n\t")
    answer = answer.strip().strip("$").strip()
    answer = re.sub(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}", r"\1", answer)
    answer = answer.replace("\\!", "").replace("\\,", "").replace(" ", "").rstrip(".")
    if re.fullmatch(r"-?[\d,]+(\.\d+)?", answer):
        answer = answer.replace(",", "")
        if "." in answer:
            answer = answer.rstrip("0").rstrip(".")
    return answer


def _plain_numbers(pred: str, ref: str) -> bool | None:
    """Both plain decimals: equal values are the same answer, distinct integers are not; else undecided."""
    if not (_DECIMAL_RE.fullmatch(pred) and _DECIMAL_RE.fullmatch(ref)):
        return None
    try:
        if Decimal(pred) == Decimal(ref):
            return True
    except InvalidOperation:
        return None
    if "." not in pred and "." not in ref and max(len(pred), len(ref)) <= 15:
        return False
    return None  # math-verify compares non-integers with its own rounding


class _Worker:
    """One math-verify worker process, spoken to over pipes (a JSON line in, "1"/"0" out)."""

    def __init__(self):
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from octo.scoring import _serve; _serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=0,
        )  # fmt: skip
        self.ready = False

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the worker has used (Linux /proc; None elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def read_line(self, deadline: float, cpu_limit: float | None = None) -> bytes | None:
        """A line from the worker, or None past the wall-clock ``deadline`` or after ``cpu_limit`` more
        seconds of the worker's CPU time (polled every few milliseconds)."""
        out, buf = self.proc.stdout, b""
        cpu_start = self.cpu_seconds() if cpu_limit is not None else None
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not select.select([out], [], [], min(left, _CPU_POLL_S) if cpu_start is not None else left)[0]:
                used = self.cpu_seconds()
                if cpu_start is not None and used is not None and used - cpu_start > cpu_limit:
                    return None
                continue
            chunk = os.read(out.fileno(), 65536)
            if not chunk:
                return None
            buf += chunk
        return buf

    def wait_ready(self) -> bool:
        if not self.ready:
            self.ready = self.read_line(time.monotonic() + WORKER_START_S) == b"ready\n"
        return self.ready

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class _Checker:
    """math-verify in a worker process, one request at a time, killed past a deadline.

    A spare worker is kept warm from the first check on, so the check after a kill does not wait for an import.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.active: _Worker | None = None
        self.spare: _Worker | None = None
        self.pid = os.getpid()

    def close(self) -> None:
        if self.pid == os.getpid():
            for worker in (self.active, self.spare):
                if worker is not None:
                    worker.kill()
        self.active = self.spare = None

    def _replace(self) -> None:
        self.active.kill()
        self.active, self.spare = self.spare or _Worker(), _Worker()

    def check(self, pred: str, ref: str) -> bool:
        with self.lock:
            if self.pid != os.getpid():  # a forked child must not share its parent's workers
                self.active = self.spare = None
                self.pid = os.getpid()
            if self.active is None or self.active.proc.poll() is not None:
                self.active = _Worker()
            if not self.active.wait_ready():
                self._replace()
                return False
            if self.spare is None:
                self.spare = _Worker()
            self.active.proc.stdin.write(json.dumps([pred, ref]).encode() + b"\n")
            line = self.active.read_line(time.monotonic() + VERIFY_WALL_S, cpu_limit=VERIFY_CPU_S)
            if line is None:  # past the deadline (or the worker died): a wrong answer
                self._replace()
                return False
            return line == b"1\n"


def _serve() -> None:
    """The worker's loop: one JSON [pred, gold] per line in, "1" or "0" per line out (EOF ends it)."""
    from math_verify import parse, verify

    # math-verify's first parse builds its grammars: pay that here, before "ready", not inside a check's deadline
    verify(parse("$\\frac{1}{2}$", parsing_timeout=0), parse("$0.5$", parsing_timeout=0), timeout_seconds=0)
    sys.stdout.buffer.write(b"ready\n")
    sys.stdout.buffer.flush()
    for line in sys.stdin.buffer:
        try:
            pred, ref = json.loads(line)
            # timeouts off (0 = no alarm): the parent's deadline bounds the whole check
            gold_parsed = parse(f"${ref}$", parsing_timeout=0)
            pred_parsed = parse(f"${pred}$", parsing_timeout=0)
            ok = bool(gold_parsed and pred_parsed and verify(gold_parsed, pred_parsed, timeout_seconds=0))
        except Exception:  # a parser failure on untrusted text is a wrong answer
            ok = False
        sys.stdout.buffer.write(b"1\n" if ok else b"0\n")
        sys.stdout.buffer.flush()


_CHECKER = _Checker()
atexit.register(_CHECKER.close)
_CACHE: dict[tuple[str, str], bool] = {}
_CACHE_SIZE = 100_000


def answers_match(predicted: str, gold: str) -> bool:
    """Is ``predicted`` the same answer as ``gold``? Normalised strings, plain numbers, then math-verify."""
    if predicted is None or len(predicted) > MAX_ANSWER_CHARS:
        return False
    pred, ref = _normalise(predicted), _normalise(gold)
    if not pred:
        return False
    if pred == ref:
        return True
    numeric = _plain_numbers(pred, ref)
    if numeric is not None:
        return numeric
    key = (pred, ref)
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        try:
            _CACHE[key] = _CHECKER.check(pred, ref)
        except Exception:  # the worker could not start or talk: wrong, never a crash
            return False
    return _CACHE[key]


def score(text: str, gold: str, *, require_boxed: bool = True) -> Verdict:
    """Score one whole completion against the gold answer.

    The answer is the last ``\\boxed{}``. With ``require_boxed=False`` a completion without a box falls back to
    its last number (lenient; the demo pilot found this rewards degenerate number strings, so it is off by default).
    """
    text = text or ""
    codes = _codes(text)
    boxes = _boxes(text, codes)
    answer = boxes[-1][1] if boxes else None
    if answer is None and not require_boxed:
        answer = _last_number(text)
    first = _BOX_RE.search(text)  # an unclosed first box still shows the model answered first
    boxed_first = first is not None and len(text[: first.start()].strip()) < BOXED_FIRST_CHARS
    return Verdict(
        correct=answer is not None and answers_match(answer, gold),
        answer=answer,
        n_boxed=len(boxes),
        boxed_first=boxed_first,
        repetitive=is_repetitive(text, codes),
    )
