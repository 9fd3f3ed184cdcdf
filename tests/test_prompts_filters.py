"""Prompt builders, numbered-item parsing, SeRL's format filters and judgment parsers."""

from __future__ import annotations

import pytest

from selfrl.judging.parse import parse_serl, parse_srr1
from selfrl.prompts import (
    parse_numbered_items,
    self_instruct_messages,
    serl_judge_messages,
    solve_messages,
    srl_messages,
    srr1_judge_messages,
)
from selfrl.selfplay.filters import (
    FORMAT_FILTERS,
    bad_start,
    banned_word,
    empty,
    format_reject,
    is_well_formed_problem,
    word_count,
    write_a_program,
)

GOOD = "Tom has 3 pens and buys 2 more. How many pens does he have?"


# --- prompts ------------------------------------------------------------------------


def test_solve_messages():
    assert solve_messages("What is 2 + 3?") == [{"role": "user", "content": "What is 2 + 3?"}]


@pytest.mark.parametrize("n", [1, 2, 8])
def test_self_instruct_messages_numbering(n):
    examples = [f"Question {chr(65 + i)}?" for i in range(n)]
    msgs = self_instruct_messages(examples)
    assert [m["role"] for m in msgs] == ["system", "user"]
    lines = msgs[1]["content"].splitlines()
    assert lines[0] == "Come up with a series of questions:"
    assert lines[1:-1] == [f"{i}. {q}" for i, q in enumerate(examples, start=1)]
    assert lines[-1] == f"{n + 1}."
    assert len(lines) == n + 2


def test_judge_and_srl_messages_carry_their_inputs():
    content = serl_judge_messages("INSTR", "OUT-ONE", "OUT-TWO")[0]["content"]
    assert content.index("INSTR") < content.index("OUT-ONE") < content.index("OUT-TWO")
    assert "\\boxed{1}" in content and "\\boxed{2}" in content
    content = srr1_judge_messages("QQ", "AAA", "BBB")[0]["content"]
    assert content.index("QQ") < content.index("AAA") < content.index("BBB")
    assert "Winner: response A" in content
    content = srl_messages("PROB", ["first", "second"])[-1]["content"]  # the user turn
    assert "PROB" in content
    assert "1. first\n2. second" in content


@pytest.mark.parametrize("text, expected", [
    ("Tom has 3 pens. How many?\n10. Ann has 2 cups. How many?",
     ["Tom has 3 pens. How many?", "Ann has 2 cups. How many?"]),
    # A continuation line joins the current item; extra spaces are collapsed.
    ("Tom has 3 pens.\n  How   many?\n10) Ann has 2 cups.\n11. Bo has 4 hats?",
     ["Tom has 3 pens. How many?", "Ann has 2 cups.", "Bo has 4 hats?"]),
    # The model repeats the open number on its first line.
    ("9. Tom has 3 pens. How many?\n10. Ann has 2 cups?",
     ["Tom has 3 pens. How many?", "Ann has 2 cups?"]),
    # An empty first line and blank lines produce no empty items.
    ("\n10. Ann has 2 cups?\n\n11.   \n12. Bo has 4 hats?",
     ["Ann has 2 cups?", "Bo has 4 hats?"]),
    ("", []),
    ("   \n  ", []),
    ("Only one problem with 5 apples?", ["Only one problem with 5 apples?"]),
])
def test_parse_numbered_items(text, expected):
    assert parse_numbered_items(text) == expected


def test_parse_numbered_items_round_trip_with_prompt():
    examples = ["A has 1 pen?", "B has 2 pens?"]
    prompt = self_instruct_messages(examples)[1]["content"]
    # A model that copied the list would be parsed back into the examples (the header is
    # the first, un-numbered item).
    items = parse_numbered_items(prompt)
    assert items[1:] == examples


# --- format filters -----------------------------------------------------------------


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("   \n\t ", "empty"),
    ("How many pens?", "too_short"),  # 3 words
    ("one", "too_short"),
    (" ".join(["word"] * 151), "too_long"),
    ("Draw a graph of 3 apples.", "banned_word"),
    ("Look at the image and count 3 apples.", "banned_word"),
    ("Look at the images and count 3 apples.", "banned_word"),
    ("Count the 3 apples in the pictures shown.", "banned_word"),
    ("Open the FILES and count 3 apples.", "banned_word"),
    ("Use the maps to count 3 apples.", "banned_word"),
    ("Plot the 3 points on a line.", "banned_word"),
    ("Tom draws 3 apples. How many now?", "banned_word"),
    ("Go to the shop and buy 3 apples.", "banned_word"),
    ("Write a program that adds 3 and 4.", "write_a_program"),
    ("  write a PROGRAM to add 3 and 4.", "write_a_program"),
    ("(Tom has 3 pens. How many does he have?)", "bad_start"),
    ("- Tom has 3 pens. How many does he have?", "bad_start"),
    ("\"Tom has 3 pens,\" says Ann. How many?", "bad_start"),
    ("Émile has 3 pens. How many does he have?", "bad_start"),
    ("日本 has 3 pens. How many does he have?", "bad_start"),
    (GOOD, None),
    ("3 friends share 12 apples equally. How many each?", None),
    ("Tom has four pens.", None),  # exactly 4 words
    (" ".join(["word"] * 150), None),
    # Banned words are whole words only.
    ("Tom is mapping 3 roads with graphite pencils. How many?", None),
    ("Tom goes to school with 3 pens. How many?", None),
])
def test_format_reject(text, reason):
    assert format_reject(text) == reason


def test_filter_order_and_individual_filters():
    assert FORMAT_FILTERS == (empty, word_count, banned_word, write_a_program, bad_start)
    # Several filters reject; the first in SeRL's order is reported.
    assert format_reject("Draw it") == "too_short"
    assert format_reject("Write a program to draw 3 circles.") == "banned_word"
    assert write_a_program("Write a program to draw 3 circles.") == "write_a_program"
    assert format_reject("(Write a program that prints 3.)") == "bad_start"
    assert word_count("a b c d", low=5) == "too_short"
    assert word_count("a b c d", high=3) == "too_long"
    assert word_count("a b c d") is None
    assert bad_start("") == "empty"
    assert bad_start("9 apples") is None
    assert empty("x") is None


@pytest.mark.parametrize("text, ok", [
    (GOOD, True),
    ("Tom has 3 pens and buys 2 more.  How many pens now?  ", True),
    ("Tom has three pens and buys two more. How many pens?", False),  # no number
    ("Tom has 3 pens and buys 2 more. Count his pens.", False),  # not a question
    ("Draw 3 pens and 2 cups. How many?", False),  # banned word
    ("How many pens?", False),  # too short
    ("", False),
])
def test_is_well_formed_problem(text, ok):
    assert is_well_formed_problem(text) is ok


# --- judgment parsing ---------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("\\boxed{1}", 1),
    ("\\boxed{2}", 2),
    ("Output (2) is better. \\boxed{ 2 }", 2),
    ("\\boxed{1} ... to repeat, \\boxed{1}", 1),
    ("\\boxed{1} or \\boxed{2}", None),
    ("I choose \\boxed{2}, no wait \\boxed{1}", None),
    ("Output (1) is best.", None),
    ("", None),
    ("\\boxed{3}", None),
    ("\\boxed{12}", None),
    ("\\boxed{(1)}", None),
])
def test_parse_serl(text, expected):
    assert parse_serl(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("... so Winner: Response B", "B"),
    ("Winner: response A", "A"),
    ("WINNER:   RESPONSE\n   a", "A"),
    ("winner: response b.", "B"),
    # The last verdict of the main pattern counts.
    ("Winner: response A. On reflection, Winner: response B", "B"),
    # The main pattern beats a fallback that comes later.
    ("Winner: response A. Response B is better at notation.", "A"),
    # Fallbacks.
    ("Overall, Response B is better.", "B"),
    ("response a wins", "A"),
    ("The winner is Response B.", "B"),
    ("I prefer Response A", "A"),
    # Nothing usable.
    ("Both responses are fine.", None),
    ("Winner: response C", None),
    ("winner: response abc", None),
    ("", None),
])
def test_parse_srr1(text, expected):
    assert parse_srr1(text) == expected
