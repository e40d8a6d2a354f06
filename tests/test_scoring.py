import json
import os
import signal
import threading
import time

import pytest

from octo import scoring
from octo.scoring import (
    MAX_ANSWER_CHARS,
    VERIFY_CPU_S,
    VERIFY_WALL_S,
    answers_match,
    boxed_contents,
    is_repetitive,
    score,
)


@pytest.mark.parametrize(
    "pred,gold",
    [
        ("7", "7"),
        ("7.0", "7"),
        ("1,234", "1234"),
        (r"\frac{1}{2}", "0.5"),
        (r"\frac{14}{2}", "7"),
        ("$18$", "18"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"\left( 3, \frac{\pi}{2} \right)"),
        (r"\text{18}", "18"),
    ],
)
def test_equivalent_answers(pred, gold):
    assert answers_match(pred, gold)


@pytest.mark.parametrize("pred,gold", [("8", "7"), ("", "7"), ("x", "7"), (r"\frac{1}{3}", "0.5")])
def test_different_answers(pred, gold):
    assert not answers_match(pred, gold)


def test_last_boxed_is_the_answer():
    v = score(r"Adding the two numbers gives \boxed{3}, no wait, \boxed{4}.", "4")
    assert v.correct and v.answer == "4" and v.n_boxed == 2 and not v.boxed_first
    assert boxed_contents(r"\boxed{\frac{1}{2}} and \boxed{x^{2}}") == [r"\frac{1}{2}", "x^{2}"]


def test_no_box_is_wrong_unless_lenient():
    assert not score("so it is 12", "12").correct
    assert score("so it is 12", "12", require_boxed=False).correct
    assert score("so it is 12", "12").answer is None


def test_boxed_first_and_repetition_flags():
    assert score(r"\boxed{5} because 2+3=5", "5").boxed_first
    assert not score(r"We add 2 and 3 to get five, so \boxed{5}", "5").boxed_first
    assert is_repetitive("the 19th century, " * 6) and score("abcde" * 5, "1").repetitive
    assert not is_repetitive("1 + 2 = 3. 3 + 4 = 7. 7 + 1 = 8.")


@pytest.mark.parametrize(
    "text",
    [
        "9" * 2_000_000,  # a huge string
        r"\boxed{" + "{" * 100_000 + "1",  # deeply nested, unclosed braces
        r"\boxed{" + "{" * 5_000 + "}" * 5_000 + "}",  # deeply nested, closed
        r"\boxed{__import__('os').system('echo pwned')}",  # code in the box: compared as text, never run
        r"\boxed{" + "x^" * 3_000 + "2}",  # a pathological expression for the parser
        "∑∫≈≠ \\boxed{٣} 数学 \U0001f600" * 100,  # unicode
        ("ab" * 3_000 + "c") * 10,  # repetition scan on a long text
        r"\boxed{" + "9" * 10_000 + "}",  # an absurdly long number
    ],
)
def test_adversarial_outputs_are_bounded_and_sane(text):
    start = time.time()
    v = score(text, "7")
    assert time.time() - start < 8
    assert v.correct is False
    assert v.answer is None or len(v.answer) <= MAX_ANSWER_CHARS * 4


# ------------------------------------------------------------------------- whole completions, any length
def _best_time(fn, repeats=3):
    """Best CPU time of a few runs (the scan is single-threaded; CPU time does not count a busy machine's waits)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        result = fn()
        best = min(best, time.process_time() - start)
    return best, result


def test_an_early_box_before_8192_tokens_of_repetition_is_the_answer():
    # OctoThinker's Llama pathology: the answer first, then repetition to the length limit (~40k chars here)
    text = "\\boxed{42} " + "so so so so so " * 2000
    v = score(text, "42")
    assert v.correct and v.answer == "42" and v.n_boxed == 1 and v.boxed_first and v.repetitive


def test_every_box_counts_anywhere_in_a_megabyte():
    filler = "We keep working on the problem, step by step, with new numbers each time: "
    body = "".join(f"{filler}{i} + {i + 1} = {2 * i + 1}. " for i in range(12_000))  # ~1.1 MB, no repetition
    text = f"\\boxed{{3}} {body}\\boxed{{\\frac{{1}}{{2}}}} {body}\\boxed{{7}}"
    assert len(text) > 2_000_000
    seconds, v = _best_time(lambda: score(text, "7"))
    assert v.correct and v.answer == "7" and v.n_boxed == 3 and v.boxed_first and not v.repetitive
    assert seconds <= 0.2 * 2  # 2 MB within the 0.2 s per MB bound
    assert boxed_contents(text) == ["3", r"\frac{1}{2}", "7"]


@pytest.mark.parametrize(
    "text",
    [
        "\\boxed{42} " + "so so so so so " * 70_000,  # 1 MB of repetition after the answer
        "\\boxed{" * 150_000,  # 1 MB of unclosed boxes
        "{" * 500_000 + "}" * 500_000,  # 1 MB of nesting
        "9" * 1_000_000,
        "".join(chr(33 + (i * 7919) % 90) for i in range(1_000_000)),  # 1 MB with no repetition
    ],
)
def test_a_megabyte_scans_within_0_2_seconds(text):
    seconds, v = _best_time(lambda: score(text, "42", require_boxed=False))
    assert seconds <= 0.2, f"{seconds:.3f}s"
    assert v.correct == text.startswith("\\boxed{42}")


def _stack_match(text):
    stack, out = [], {}
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            out[stack.pop()] = i
    return out


def test_brace_matching_and_repetition_agree_with_the_plain_algorithms():
    import random

    import regex

    from octo.scoring import _codes, _last_number, _matching_braces

    rng = random.Random(0)
    pattern = regex.compile(r"(.{5,}?)\1{4,}", regex.DOTALL)  # the definition, as a (slow) regex
    for _ in range(400):
        alphabet = rng.choice(["{}a", "ab", "abc", "{}", "a", "abcd{}", "ab{}  1,.-"])
        text = "".join(rng.choice(alphabet) for _ in range(rng.choice([30, 200, 1500])))
        opens, closes = _matching_braces(_codes(text))
        assert dict(zip(opens.tolist(), closes.tolist())) == _stack_match(text)
        assert is_repetitive(text) == (pattern.search(text) is not None), text
        numbers = [m.group() for m in regex.finditer(r"-?\d[\d,]*(?:\.\d+)?", text)]
        assert _last_number(text) == (numbers[-1] if numbers else None)


def test_long_runs_of_long_chunks():
    import random

    rng = random.Random(1)
    chunk = "".join(rng.choice("abcdefghij ") for _ in range(1000))  # a 1,000 character paragraph
    assert is_repetitive("intro " + chunk * 5 + " outro")
    assert not is_repetitive("intro " + chunk * 4 + chunk[:990] + " outro")


@pytest.mark.parametrize(
    "answer",
    [
        r"2^{2^{2^{2^{2^{2}}}}}",  # power tower
        r"9^{9^{9^{9}}}",
        "1000000!",  # huge factorial
        r"(10^{10})!",
        "7" * 20_000,  # a 20k-digit integer
        "{" * 10_000 + "7" + "}" * 10_000,  # 10k nested braces
        r"\def\x{\x\x}\x",  # macro definitions
        r"\newcommand{\a}{\a\a}\a",
        "(" * 5_000 + "a" * 5_000,  # regex bomb shapes
        "a" * 30 + "!" + "1" * 30,
    ],
)
def test_worst_case_answers_are_bounded(answer):
    """At most VERIFY_CPU_S of the checker's CPU time (load-independent), and the wall-clock cap."""
    text = f"The answer is \\boxed{{{answer}}}."
    start = time.perf_counter()
    v = score(text, "7")
    assert time.perf_counter() - start <= VERIFY_WALL_S + 1.0
    assert not v.correct


def test_a_check_is_timed_by_the_workers_cpu_not_by_the_wall_clock():
    """A worker that gets no CPU (stopped, as on a starved machine) is not judged by the CPU deadline; one
    that burns CPU is killed after VERIFY_CPU_S of it, whatever the wall clock says."""
    worker = scoring._Worker()
    try:
        assert worker.wait_ready()
        os.kill(worker.proc.pid, signal.SIGSTOP)
        worker.proc.stdin.write(json.dumps([r"\frac{1}{2}", "0.5"]).encode() + b"\n")
        start = time.monotonic()
        threading.Timer(1.5, os.kill, (worker.proc.pid, signal.SIGCONT)).start()  # 1.5 s without CPU
        assert worker.read_line(start + 10, cpu_limit=VERIFY_CPU_S) == b"1\n"
        assert time.monotonic() - start >= 1.5
        worker.proc.stdin.write(json.dumps([r"9^{9^{9^{9^{9}}}}", "3"]).encode() + b"\n")
        cpu_before, start = worker.cpu_seconds(), time.monotonic()
        assert worker.read_line(start + 10, cpu_limit=VERIFY_CPU_S) is None
        assert worker.cpu_seconds() - cpu_before >= VERIFY_CPU_S
    finally:
        worker.kill()


def _half_check(_=None):
    return answers_match(r"\frac{1}{2}", "0.5"), answers_match(r"\frac{1}{3}", "0.5")


def test_same_verdict_in_the_main_thread_a_worker_thread_and_a_process_pool():
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    assert _half_check() == (True, False)
    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(_half_check, range(2))) == [(True, False)] * 2
    thread_result = []
    worker = threading.Thread(target=lambda: thread_result.append(_half_check()))
    worker.start()
    worker.join()
    assert thread_result == [(True, False)]
    with ProcessPoolExecutor(2) as pool:
        assert list(pool.map(_half_check, range(2))) == [(True, False)] * 2


def test_a_killed_check_is_wrong_and_the_next_one_is_right():
    assert not answers_match(r"9^{9^{9^{9^{9}}}}", "3")  # past the deadline: the worker is replaced
    assert answers_match(r"\frac{6}{2}", "3")


def test_the_two_block_scans_find_the_same_candidates():
    import random

    import numpy as np

    from octo.scoring import _codes, _prefix_hashes, _quads_batched, _quads_strided

    rng = random.Random(2)
    for alphabet in ["ab", "abc", "aab", "abcdefgh"]:
        codes = _codes("".join(rng.choice(alphabet) for _ in range(6000)))
        hashes, powers = _prefix_hashes(codes)
        periods, starts = _quads_batched(hashes, powers, np.arange(5, 60))
        for p in range(5, 60):
            assert _quads_strided(hashes, powers, p).tolist() == starts[periods == p].tolist()
    assert is_repetitive("x" * 3000 + "abcdefg" * 5) and not is_repetitive("xy" * 9 + "abcdefg" * 4)
