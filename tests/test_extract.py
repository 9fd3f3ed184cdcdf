"""Answer extraction, equivalence, grading, AIME and multiple-choice extraction."""

from __future__ import annotations

import pytest

from selfrl.eval.extract import (
    equivalent,
    extract_aime,
    extract_answer,
    extract_choice,
    gold_parses,
    grade,
    last_boxed,
)

# --- extraction ---------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("so \\boxed{\\frac{1}{2}} and then", "\\frac{1}{2}"),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
    ("first \\boxed{3}, finally \\boxed{4}.", "4"),
    ("\\fbox{12}", "12"),
    ("\\boxed{ 7 }", "7"),
])
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_last_boxed_unbalanced_or_missing():
    assert last_boxed("\\boxed{\\frac{1}{2}") is None
    assert last_boxed("no box here 5") is None


@pytest.mark.parametrize("text, expected", [
    # Nested braces are kept.
    ("so \\boxed{\\frac{1}{2}} and then", "\\frac{1}{2}"),
    # A box wins over numbers written after it.
    ("Hence \\boxed{7}. Check: 7 + 8 = 15, and 99 is unrelated.", "7"),
    ("The answer is \\boxed{12}. Steps used 3 and 4.", "12"),
    # "The answer is ..." without a box.
    ("The answer is 42.", "42"),
    ("We add them. The answer is 42. Then we check 43.", "42"),
    ("the answer is: 17", "17"),
    ("The answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
    ("The answer is 3.5.", "3.5"),
    ("The answer is 1,234.", "1,234"),
    ("The answer is -7.", "-7"),
    # Last number fallback.
    ("She has 3 apples and then 5 more, so 8", "8"),
    ("Total 1,234 pens", "1,234"),
    ("It drops to -5 degrees", "-5"),
    ("half is 1/2", "1/2"),
    ("value 2.75 then", "2.75"),
    # Nothing at all.
    ("I do not know.", None),
    ("", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_empty_box_falls_back_rather_than_returning_empty():
    ans = extract_answer("\\boxed{} and later 5 and 7")
    assert ans != ""
    assert ans == "7"


# --- equivalence and grading --------------------------------------------------------


@pytest.mark.parametrize("a, b", [
    ("1,234", "1234"),
    ("1234", "1,234"),
    ("-1,234", "-1234"),
    ("\\frac{1}{2}", "0.5"),
    ("0.5", "\\frac{1}{2}"),
    ("1/2", "0.5"),
    ("3", "3.0"),
    ("-4", "-4.00"),
    ("$5$", "5"),
    ("\\text{5}", "5"),
    ("\\frac{2}{4}", "\\frac{1}{2}"),
])
def test_equivalent_true(a, b):
    assert equivalent(a, b)


@pytest.mark.parametrize("a, b", [
    ("3", "4"),
    ("-3", "3"),
    ("1,234", "1234.5"),
    ("\\frac{1}{2}", "0.6"),
    ("0.5", "\\frac{1}{3}"),
    (None, "3"),
    ("3", None),
])
def test_equivalent_false(a, b):
    assert not equivalent(a, b)


# The benchmarks' awkward golds (issue 23): GSM8K's thousands, MATH's \dfrac, \text{}, units,
# intervals and matrices, OlympiadBench's several answers, Minerva's scientific notation.
@pytest.mark.parametrize("gold, pred", [
    ("1500", "1,500"),
    ("\\dfrac{3}{4}", "\\frac34"),
    ("\\dfrac{3}{4}", "0.75"),
    ("\\text{(C)}", "C"),
    ("\\text{Ann}", "Ann"),
    ("5\\text{ cm}", "5"),
    ("90^\\circ", "90"),
    ("10\\%", "10"),
    ("(-2, 2)", "(-2,2)"),
    ("[1,4)", "[1, 4)"),
    ("(-\\infty, 2]", "(-\\infty,2]"),
    ("\\begin{pmatrix} 3 \\\\ 8 \\end{pmatrix}", "\\begin{pmatrix}3\\\\8\\end{pmatrix}"),
    ("3, -3", "-3, 3"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)"),
    ("1.3e-3", "0.0013"),
    ("3.83e35", "3.83 \\times 10^{35}"),
])
def test_benchmark_golds_match_equal_answers(gold, pred):
    assert gold_parses(gold)
    assert grade(pred, gold).correct
    assert grade(extract_answer(f"so \\boxed{{{pred}}}."), gold).correct  # as a completion writes it


@pytest.mark.parametrize("gold, pred", [
    ("(-2, 2)", "[-2, 2]"),  # an open interval is not the closed one
    ("[1,4)", "[1,4]"),
    ("\\begin{pmatrix} 3 \\\\ 8 \\end{pmatrix}", "\\begin{pmatrix}3\\\\9\\end{pmatrix}"),
    ("\\text{Ann}", "\\text{Bob}"),
    ("3.83e35", "3.84e35"),
    ("1000000000", "1000000001"),  # the relative tolerance of plain numbers is tiny
])
def test_benchmark_golds_reject_different_answers(gold, pred):
    assert not grade(pred, gold).correct


def test_grade_boxed_vs_decimal_gold():
    g = grade(extract_answer("so \\boxed{3}"), "3.0")
    assert g.correct is True and g.gold_parsed is True


def test_grade_fraction_vs_decimal():
    assert grade(extract_answer("\\boxed{\\frac{1}{2}}"), "0.5").correct is True
    assert grade(extract_answer("The answer is 0.5."), "\\frac{1}{2}").correct is True
    assert grade(extract_answer("The answer is 1,234."), "1234").correct is True


def test_grade_wrong_and_missing_prediction():
    g = grade("4", "3")
    assert g.correct is False and g.gold_parsed is True
    g = grade(None, "3")
    assert g.correct is False and g.gold_parsed is True


@pytest.mark.parametrize("gold", ["???", "", "   ", None])
def test_unparsable_gold(gold):
    assert gold_parses(gold) is False
    g = grade("3", gold)
    assert g.correct is False
    assert g.gold_parsed is False


def test_unparsable_gold_never_correct_even_if_identical():
    g = grade("???", "???")
    assert g.correct is False and g.gold_parsed is False


@pytest.mark.parametrize("gold", ["3", "3.0", "1,234", "-2", "\\frac{1}{2}", "$7$"])
def test_parsable_gold(gold):
    assert gold_parses(gold) is True


# --- AIME ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("\\boxed{0}", "0"),
    ("\\boxed{7}", "7"),
    ("\\boxed{999}", "999"),
    ("\\boxed{007}", "7"),
    ("\\boxed{000}", "0"),
    ("\\boxed{042}", "42"),
    ("The answer is 123.", "123"),
    ("we get 5 and finally 204", "204"),
    ("\\boxed{1000}", None),
    ("\\boxed{1,000}", None),
    ("\\boxed{-5}", None),
    ("\\boxed{2.5}", None),
    ("\\boxed{\\frac{1}{2}}", None),
    ("no numbers", None),
])
def test_extract_aime(text, expected):
    assert extract_aime(text) == expected


# --- multiple choice ----------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    # "answer is (X)" beats "Answer: X" beats the last standalone letter.
    ("Answer: B. Looking again, the answer is (C). Option D is wrong.", "C"),
    ("The answer is (C)\nAnswer: B\nD", "C"),
    ("Answer: B\nOption D and E are wrong.", "B"),
    ("answer: (E) since A fails", "E"),
    ("Options A and D look fine, but I pick G", "G"),
    ("the answer is J", "J"),
    # Later matches of the same pattern win.
    ("the answer is (A) ... no, the answer is (F)", "F"),
    # Letters past J and lowercase letters are not choices.
    ("Answer: K", None),
    ("no letter here", None),
])
def test_extract_choice(text, expected):
    assert extract_choice(text) == expected
