import time

import pytest

from octo.scoring import MAX_ANSWER_CHARS, answers_match, boxed_contents, is_repetitive, score


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
