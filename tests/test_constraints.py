"""Issue 25: the instruction-following checkers on hand-written responses (punctuation, Unicode,
trailing whitespace, markdown bullets), and bad constraints refused with one clear line."""

from __future__ import annotations

import pytest

from selfrl.data.constraints import (
    CONSTRAINTS,
    Constraint,
    ConstraintError,
    bullet_count,
    parse_constraint,
    parse_constraints,
    satisfied,
    words,
)


def check(kind: str, text: str, **params) -> bool:
    return parse_constraint({"kind": kind, "params": params}).check(text)


# ---------------------------------------------------------------------------------------
# words


@pytest.mark.parametrize("text, expected", [
    ("Hello, world!", ["Hello", "world"]),
    ("don't stop — it's well-known", ["don't", "stop", "it's", "well-known"]),
    ("It’s fine", ["It’s", "fine"]),  # a typographic apostrophe joins too
    ("- one\n- two\n", ["one", "two"]),  # the bullet marker is no word
    ("Καλημέρα κόσμε, привет мир", ["Καλημέρα", "κόσμε", "привет", "мир"]),
    ("42 cats; 3.5 dogs, 1,000 ants", ["42", "cats", "3.5", "dogs", "1,000", "ants"]),
    ("   \n\t ", []),
    ("snake_case ... !!! 🙂", ["snake", "case"]),  # underscores split; emoji and punctuation are no words
])
def test_words(text, expected):
    assert words(text) == expected


# ---------------------------------------------------------------------------------------
# one checker per kind


def test_max_words_is_strictly_fewer():
    assert check("max_words", "one two three four", n=5)
    assert not check("max_words", "one two three four five", n=5)
    assert check("max_words", "one, two; three... four!!!   \n\n", n=5)  # punctuation and trailing space
    assert check("max_words", "", n=5)


def test_min_words_counts_at_least():
    assert check("min_words", "one two three", n=3)
    assert not check("min_words", "one two - - -", n=3)


@pytest.mark.parametrize("text, ok", [
    ("The ocean is wide.", True),
    ("OCEAN!", True),  # any case
    ("(ocean), and more", True),  # punctuation around it
    ("- a calm ocean\n- waves", True),  # inside a bullet
    ("oceanic views", False),  # part of a longer word
    ("the oceans", False),  # a plural is another word
    ("sea", False),
])
def test_include_keyword(text, ok):
    assert check("include_keyword", text, word="ocean") is ok


def test_keywords_match_across_unicode_normal_forms():
    decomposed = "un cafe\u0301 noir"  # e + combining acute
    assert check("include_keyword", decomposed, word="café")
    assert check("include_keyword", "UN CAFÉ", word="café")
    assert not check("exclude_word", decomposed, word="café")


@pytest.mark.parametrize("text, ok", [
    ("Nice and calm.", True),
    ("Very calm.", False),
    ("It is very, very calm", False),
    ("every day", True),  # 'very' inside a word is not the word
])
def test_exclude_word(text, ok):
    assert check("exclude_word", text, word="very") is ok


@pytest.mark.parametrize("text, n", [
    ("- one\n- two\n- three", 3),
    ("Intro line\n\n- one\n- two\n- three\n\nThat is it.", 3),  # text around the list
    ("* one\n+ two\n  - nested three", 3),  # markdown's three markers, indented ones too
    ("- one\r\n- two\r\n- three\r\n", 3),  # Windows line endings
    ("- one\n- two\n- three\n   \n\n", 3),  # trailing whitespace
    ("1. one\n2. two\n3. three", 0),  # a numbered list is not bullets
    ("**1. one**\n**2. two**", 0),  # bold is not a bullet
    ("---\n- one\n-two\n- ", 1),  # a rule, a dash without a space, an empty bullet: none count
    ("• one\n• two", 0),  # only markdown's markers
])
def test_bullet_count(text, n):
    assert bullet_count(text) == n
    assert check("bullets", text, n=3) is (n == 3)


@pytest.mark.parametrize("text, ok", [
    ("all quiet on the river.", True),
    ("all quiet, 42 times!\n- yes", True),  # digits and punctuation are neither case
    ("été à paris", True),
    ("straße", True),
    ("All quiet.", False),
    ("ÉTÉ", False),
    ("12345 !!!", False),  # no letter at all: nothing is written in lowercase
    ("", False),
])
def test_lowercase(text, ok):
    assert check("lowercase", text) is ok


@pytest.mark.parametrize("text, ok", [
    ("Done. That is all.", True),
    ("Done. That is all.  \n\n", True),  # trailing whitespace
    ("done. THAT IS ALL.", True),  # any case
    ("That is all. More text.", False),  # not at the end
    ("Done. That is all!", False),  # other punctuation is another phrase
    ("Done. That is all", False),
])
def test_end_phrase(text, ok):
    assert check("end_phrase", text, phrase="That is all.") is ok


@pytest.mark.parametrize("text, ok", [
    ("No commas here. None at all!", True),
    ("One, two", False),
    ("一，二", False),  # full-width comma
    ("一、二", False),  # ideographic comma
    ("semi; colons: fine", True),
])
def test_no_commas(text, ok):
    assert check("no_commas", text) is ok


@pytest.mark.parametrize("text, ok", [
    ("<<Tides of Autumn>>\nThe leaves fall.", True),
    ("Some text then <<a title>> later", True),
    ("<<  >>", False),  # an empty title
    ("<<a\nb>>", False),  # a title is one line
    ("«Tides»", False),
    ("<Tides>", False),
])
def test_title(text, ok):
    assert check("title", text) is ok


@pytest.mark.parametrize("text, ok", [
    ('{"title": "Fog", "summary": "Grey."}', True),
    ('  {"title": "Fog", "summary": "Grey.", "extra": 1}\n', True),  # more keys are fine
    ('```json\n{"title": "Fog", "summary": "Grey."}\n```', True),  # a fenced block
    ('```\n{"title": "Fog", "summary": "Grey."}\n```', True),
    ('{"title": "Fog"}', False),  # a key missing
    ('{"Title": "Fog", "summary": "Grey."}', False),  # keys match exactly
    ('{"data": {"title": "Fog", "summary": "Grey."}}', False),  # not at the top level
    ('[{"title": "Fog", "summary": "Grey."}]', False),  # an array
    ('Here it is: {"title": "Fog", "summary": "Grey."}', False),  # not only JSON
    ('{"title": "Fog", "summary": "Gr', False),  # cut off
])
def test_json_keys(text, ok):
    assert check("json_keys", text, keys=["title", "summary"]) is ok


def test_satisfied_reports_each_constraint_in_order():
    cs = parse_constraints([{"kind": "lowercase"}, {"kind": "include_keyword", "params": {"word": "fog"}},
                            {"kind": "max_words", "params": {"n": 3}}])
    assert satisfied("grey fog today", cs) == [True, True, False]
    assert satisfied("Fog.", cs) == [False, True, True]


# ---------------------------------------------------------------------------------------
# stored form and instructions


@pytest.mark.parametrize("kind", CONSTRAINTS.names())
def test_every_generator_choice_round_trips_and_reads_as_a_sentence(kind):
    for params in CONSTRAINTS.get(kind).choices:
        c = parse_constraint({"kind": kind, "params": params})
        assert parse_constraint(c.to_dict()) == c
        sentence = c.instruction()
        assert sentence[0].isupper() and sentence.endswith(".") and "{" not in sentence.replace('{"', "")


def test_stored_form_and_description():
    c = parse_constraint({"kind": "json_keys", "params": {"keys": ["idea", "reason"]}})
    assert c.to_dict() == {"kind": "json_keys", "params": {"keys": ["idea", "reason"]}}
    assert str(c) == "json_keys(keys=['idea', 'reason'])"
    assert c.instruction() == 'Answer only with a JSON object that has the keys "idea" and "reason".'
    assert parse_constraint({"kind": "lowercase", "params": {}}) == Constraint("lowercase")


# ---------------------------------------------------------------------------------------
# bad input: one line naming the constraint, the parameter, the valid options


@pytest.mark.parametrize("raw, message", [
    ({"kind": "lowercse"}, "unknown constraint kind 'lowercse' (did you mean 'lowercase'?); valid kinds: "
                           "bullets, end_phrase"),
    ({"kind": "bullets"}, "(bullets): missing parameter 'n'"),
    ({"kind": "bullets", "params": {"n": "3"}}, "parameter 'n' must be an integer from 1 to 20, got '3'"),
    ({"kind": "bullets", "params": {"n": True}}, "parameter 'n' must be an integer"),
    ({"kind": "bullets", "params": {"n": 0}}, "got 0"),
    ({"kind": "max_words", "params": {"n": 1}}, "from 2 to 1000, got 1"),
    ({"kind": "bullets", "params": {"n": 3, "count": 3}}, "unknown parameter 'count'; its parameters: 'n'"),
    ({"kind": "include_keyword", "params": {"word": "two words"}}, "must be a single word"),
    ({"kind": "include_keyword", "params": {"word": ""}}, "must be a single word"),
    ({"kind": "end_phrase", "params": {"phrase": "Bye.\nNow"}}, "must be a one-line phrase"),
    ({"kind": "json_keys", "params": {"keys": []}}, "must be a list of 1 to 6 distinct keys"),
    ({"kind": "json_keys", "params": {"keys": ["a", "a"]}}, "distinct keys"),
    ({"kind": "json_keys", "params": {"keys": "title"}}, "must be a list"),
    ({"kind": "lowercase", "params": [1]}, "'params' must be an object"),
    ({"kind": "lowercase", "args": {}}, "unknown field 'args'"),
    ({"params": {}}, "expected {'kind': NAME"),
])
def test_a_malformed_constraint_is_one_clear_line(raw, message):
    with pytest.raises(ConstraintError, match="^test.jsonl:4: constraints\\[0\\]") as e:
        parse_constraints([raw], where="test.jsonl:4")
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("raw, reason", [
    # the example: too few words for the bullets
    ([("max_words", {"n": 3}), ("bullets", {"n": 3})],
     "bullets needs at least 3 words, max_words allows at most 2"),
    ([("min_words", {"n": 20}), ("max_words", {"n": 15})], "at least 20 words, max_words allows at most 14"),
    ([("max_words", {"n": 3}), ("end_phrase", {"phrase": "Thank you for reading."})], "at least 4 words"),
    ([("include_keyword", {"word": "good"}), ("exclude_word", {"word": "GOOD"})], "it is the word 'GOOD'"),
    ([("end_phrase", {"phrase": "That is really all."}), ("exclude_word", {"word": "really"})],
     "contains the word 'really'"),
    ([("json_keys", {"keys": ["a", "b"]}), ("no_commas", {})], "',' (between the object's members)"),
    ([("json_keys", {"keys": ["Title"]}), ("lowercase", {})], "'Title', which lowercase rules out"),
    ([("bullets", {"n": 2}), ("json_keys", {"keys": ["a"]})], "a JSON object has no bullet lines"),
    ([("json_keys", {"keys": ["a"]}), ("end_phrase", {"phrase": "Bye."})], "a JSON object ends with '}'"),
    ([("end_phrase", {"phrase": "Bye, now."}), ("no_commas", {})], "it has a comma"),
    ([("lowercase", {}), ("lowercase", {})], "constraint kind 'lowercase' given 2 times"),
])
def test_constraints_that_cannot_all_hold_are_refused(raw, reason):
    stored = [{"kind": k, "params": p} for k, p in raw]
    with pytest.raises(ConstraintError) as e:
        parse_constraints(stored, where="train.jsonl:9")
    assert str(e.value).startswith("train.jsonl:9: ") and reason in str(e.value)


@pytest.mark.parametrize("raw, witness", [
    # the checks refuse only what is impossible: each of these has a response satisfying all
    ([("json_keys", {"keys": ["a"]}), ("no_commas", {})], '{"a": 1}'),
    ([("include_keyword", {"word": "Ocean"}), ("lowercase", {})], "the ocean"),  # keywords match any case
    ([("end_phrase", {"phrase": "That is all."}), ("lowercase", {})], "calm sea. that is all."),
    ([("json_keys", {"keys": ["title"]}), ("title", {}), ("lowercase", {})], '{"title": "<<fog>>"}'),
    ([("max_words", {"n": 4}), ("bullets", {"n": 3})], "- a\n- b\n- c"),
    ([("json_keys", {"keys": ["idea", "reason"]}), ("max_words", {"n": 3})], '{"idea": "", "reason": ""}'),
])
def test_satisfiable_combinations_pass_and_have_a_witness(raw, witness):
    cs = parse_constraints([{"kind": k, "params": p} for k, p in raw])
    assert all(satisfied(witness, cs))


def test_not_a_list_of_constraints():
    for raw in ([], {"kind": "lowercase"}, None):
        with pytest.raises(ConstraintError, match="must be a non-empty list"):
            parse_constraints(raw)
