"""Instruction-following constraints: each kind's instruction, its checker and its parameters.

A constraint is data (a kind and its parameters: ``{"kind": "max_words", "params": {"n": 15}}``),
never only text: the prompt's instruction is written from it, and the checker reads it back.
Every kind is registered by name in :data:`CONSTRAINTS` and declares, beside its checker, what
the satisfiability check needs (how many words an answer must and may have, which texts it must
contain, which kinds cannot share an answer with it), so that a row whose constraints cannot all
hold together is refused where it is read (:func:`parse_constraints`), never scored.

========================  ====================================================================
kind (params)             satisfied when the response ...
========================  ====================================================================
``max_words`` (n)         has fewer than ``n`` words
``min_words`` (n)         has at least ``n`` words
``include_keyword`` (word)  contains ``word`` as a whole word, any case
``exclude_word`` (word)   does not contain ``word`` as a whole word, any case
``bullets`` (n)           has exactly ``n`` markdown bullet lines (``-``, ``*`` or ``+``, then a space)
``lowercase``             has letters and none of them upper case
``end_phrase`` (phrase)   ends with ``phrase`` (any case; trailing whitespace ignored)
``no_commas``             has no comma (``,``, nor the full-width and ideographic ones)
``title``                 has a title in double angle brackets, ``<<like this>>``
``json_keys`` (keys)      is a JSON object (a markdown code fence around it allowed) with every key
========================  ====================================================================

Words are runs of letters and digits in any script, joined by inner apostrophes or hyphens
(``don't`` and ``well-known`` are one word each, ``- item`` is one, so is ``3.5``); the text is NFC-normalised
first, so a decomposed ``é`` matches a composed one.  The checkers follow IFEval's where it has
the kind (case-insensitive keywords and end phrases, ``*`` bullets counted like ``-`` ones, a
fenced JSON block accepted), and are stricter than IFEval's word counting, which uses NLTK.

>>> cs = parse_constraints([{"kind": "lowercase"}, {"kind": "max_words", "params": {"n": 5}}])
>>> [c.instruction() for c in cs]
['Write your whole answer in lowercase letters.', 'Answer in fewer than 5 words.']
>>> [c.check("a short answer.") for c in cs], [c.check("A short answer.") for c in cs]
([True, True], [False, True])
>>> parse_constraints([{"kind": "max_words", "params": {"n": 3}}, {"kind": "bullets", "params": {"n": 3}}])
Traceback (most recent call last):
...
selfrl.data.constraints.ConstraintError: constraints[0] (max_words) and constraints[1] (bullets) cannot \
both hold: bullets needs at least 3 words, max_words allows at most 2
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from selfrl.data.io import DataError
from selfrl.registry import Registry, did_you_mean


class ConstraintError(DataError):
    """A constraint that cannot be used: an unknown kind, a malformed parameter, or constraints that
    cannot all hold together.  The message names the constraint (and, from a loader, the row)."""


# --- words and the checkers ------------------------------------------------------------------

# A word: a number (3.5, 1,000), or letters and digits of any script ([^\W_]) that inner
# apostrophes or hyphens join.
_WORD = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+(?:[-'’][^\W_]+)*")
_BULLET = re.compile(r"^[ \t]*[-*+][ \t]+\S", re.MULTILINE)  # "- x", "* x", "  + x"; not "---", "**b**"
_TITLE = re.compile(r"<<[^\n<>]*[^\W_][^\n<>]*>>")  # a letter or digit inside, on one line
_COMMAS = ",\uff0c\u3001\ufe50\ufe51"  # , and the full-width, ideographic and small forms
_FENCE = re.compile(r"^```[A-Za-z]*[ \t]*\n(.*?)\n?```$", re.DOTALL)


def normalise(text: str) -> str:
    """NFC: composed and decomposed accents read as the same letters.

    >>> len("cafe\\u0301"), len(normalise("cafe\\u0301"))
    (5, 4)
    """
    return unicodedata.normalize("NFC", text)


def words(text: str) -> list[str]:
    """The words of ``text`` (see the module docstring).

    >>> words("- Don't stop: well-known café, 42 times!")
    ["Don't", 'stop', 'well-known', 'café', '42', 'times']
    """
    return _WORD.findall(normalise(text))


def _has_word(text: str, word: str) -> bool:
    """``word`` occurs in ``text`` as a whole word (no letter or digit on either side), any case."""
    pattern = rf"(?<![^\W_]){re.escape(normalise(word))}(?![^\W_])"
    return re.search(pattern, normalise(text), re.IGNORECASE) is not None


def bullet_count(text: str) -> int:
    """Markdown bullet lines: ``-``, ``*`` or ``+`` (indented or not), a space, then something.

    >>> bullet_count("Intro\\n- one\\n* two\\n  + three\\n---\\n**bold**\\n1. four\\n-\\n")
    3
    """
    return len(_BULLET.findall(text))


def _json_object(text: str) -> dict | None:
    """The JSON object the whole text is (a markdown code fence around it allowed), else ``None``."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# --- parameters ------------------------------------------------------------------------------

def _count(lo: int, hi: int) -> Callable[[Any], int]:
    """A parameter that is an integer in ``[lo, hi]`` (a bool is not an integer here)."""
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"must be an integer from {lo} to {hi}, got {value!r}")
        return value
    return check


def _word(value: Any) -> str:
    """A parameter that is one word (see :func:`words`)."""
    if not isinstance(value, str) or words(value) != [normalise(value)]:
        raise ValueError(f"must be a single word (letters or digits, no spaces), got {value!r}")
    return normalise(value)


def _phrase(value: Any) -> str:
    """A parameter that is a phrase on one line with at least one word, no outer whitespace."""
    if not isinstance(value, str) or not words(value) or "\n" in value or value != value.strip():
        raise ValueError(f"must be a one-line phrase with a word in it and no outer spaces, got {value!r}")
    return normalise(value)


def _keys(value: Any) -> tuple[str, ...]:
    """A parameter that is a list of 1 to 6 distinct, non-empty JSON keys."""
    if (not isinstance(value, (list, tuple)) or not 1 <= len(value) <= 6
            or not all(isinstance(k, str) and words(k) for k in value) or len(set(value)) != len(value)):
        raise ValueError(f"must be a list of 1 to 6 distinct keys, each with a word in it, got {value!r}")
    return tuple(normalise(k) for k in value)


# --- the kinds -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Need:
    """A text every satisfying response contains (``case_sensitive``: in exactly this case)."""

    text: str
    case_sensitive: bool = False
    why: str = ""  # said in a conflict's message when the text alone does not explain itself

    def __str__(self) -> str:
        return f"{self.text!r}" + (f" ({self.why})" if self.why else "")


def _no_words(**_: Any) -> int:
    return 0


def _no_limit(**_: Any) -> int | None:
    return None


def _no_needs(**_: Any) -> tuple[Need, ...]:
    return ()


def _forbids_nothing(need: Need, **_: Any) -> str | None:
    return None


@dataclass(frozen=True)
class ConstraintKind:
    """One kind of constraint.

    Args:
        instruction: ``instruction(**params)``, the prompt's sentence that asks for it.
        check: ``check(text, **params) -> bool`` on an NFC-normalised response.
        params: parameter name -> a function that returns the clean value or raises
            ``ValueError`` saying what it must be.
        choices: parameter sets the task generator draws from (``({},)`` for a kind without any).
        min_words: ``min_words(**params)``, the fewest words a satisfying response can have.
        max_words: ``max_words(**params)``, the most it may have (``None``: no limit).
        needs: ``needs(**params)``, the texts every satisfying response contains.
        forbids: ``forbids(need, **params)``: why this constraint rules out a response that
            contains ``need`` (``None``: it does not).
        excludes: other kinds no response can satisfy together with this one, and why.
    """

    instruction: Callable[..., str]
    check: Callable[..., bool]
    params: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    choices: tuple[dict, ...] = ({},)
    min_words: Callable[..., int] = _no_words
    max_words: Callable[..., int | None] = _no_limit
    needs: Callable[..., tuple[Need, ...]] = _no_needs
    forbids: Callable[..., str | None] = _forbids_nothing
    excludes: Mapping[str, str] = field(default_factory=dict)


CONSTRAINTS: Registry[ConstraintKind] = Registry("constraint kind")

KEYWORDS = ("ocean", "light", "future", "simple", "energy", "friend", "history", "balance", "garden",
            "music", "journey", "morning")
BANNED = ("very", "really", "thing", "good", "important", "many")
PHRASES = ("That is all.", "Thank you for reading.", "Any other questions?", "Have a nice day.")
JSON_KEYS = (("title", "summary"), ("topic", "fact"), ("name", "description"), ("idea", "reason", "example"))


def _contains_banned(need: Need, word: str) -> str | None:
    if not _has_word(need.text, word):
        return None
    same = need.text.casefold() == word.casefold()
    return f"it is the word '{word}'" if same else f"it contains the word '{word}'"


def _json_needs(keys: tuple[str, ...]) -> tuple[Need, ...]:
    """Every key, exactly as written, and a comma between two members."""
    comma = (Need(",", why="between the object's members"),) if len(keys) > 1 else ()
    return tuple(Need(k, case_sensitive=True) for k in keys) + comma


CONSTRAINTS.register("max_words")(ConstraintKind(
    instruction=lambda n: f"Answer in fewer than {n} words.",
    check=lambda text, n: len(words(text)) < n,
    params={"n": _count(2, 1000)}, choices=tuple({"n": n} for n in (10, 15, 20, 30)),
    max_words=lambda n: n - 1))
CONSTRAINTS.register("min_words")(ConstraintKind(
    instruction=lambda n: f"Answer in at least {n} words.",
    check=lambda text, n: len(words(text)) >= n,
    params={"n": _count(1, 1000)}, choices=tuple({"n": n} for n in (10, 15, 20, 25)),
    min_words=lambda n: n))
CONSTRAINTS.register("include_keyword")(ConstraintKind(
    instruction=lambda word: f"Include the word '{word}'.",
    check=lambda text, word: _has_word(text, word),
    params={"word": _word}, choices=tuple({"word": w} for w in KEYWORDS),
    min_words=lambda word: 1, needs=lambda word: (Need(word),)))
CONSTRAINTS.register("exclude_word")(ConstraintKind(
    instruction=lambda word: f"Do not use the word '{word}'.",
    check=lambda text, word: not _has_word(text, word),
    params={"word": _word}, choices=tuple({"word": w} for w in BANNED),
    forbids=_contains_banned))
CONSTRAINTS.register("bullets")(ConstraintKind(
    instruction=lambda n: f"Answer with exactly {n} bullet points, each on its own line starting with '- '.",
    check=lambda text, n: bullet_count(text) == n,
    params={"n": _count(1, 20)}, choices=tuple({"n": n} for n in (2, 3, 4)),
    min_words=lambda n: n))  # a word in each bullet
CONSTRAINTS.register("lowercase")(ConstraintKind(
    instruction=lambda: "Write your whole answer in lowercase letters.",
    check=lambda text: text.islower(),
    min_words=lambda: 1,  # str.islower needs a cased letter: an answer without one fails
    forbids=lambda need: "it has upper-case letters"
    if need.case_sensitive and need.text != need.text.lower() else None))
CONSTRAINTS.register("end_phrase")(ConstraintKind(
    instruction=lambda phrase: f"End your answer with the exact phrase '{phrase}'.",
    check=lambda text, phrase: text.rstrip().casefold().endswith(phrase.casefold()),
    params={"phrase": _phrase}, choices=tuple({"phrase": p} for p in PHRASES),
    min_words=lambda phrase: len(words(phrase)), needs=lambda phrase: (Need(phrase),)))
CONSTRAINTS.register("no_commas")(ConstraintKind(
    instruction=lambda: "Do not use any commas.",
    check=lambda text: not any(c in text for c in _COMMAS),
    forbids=lambda need: "it has a comma" if any(c in need.text for c in _COMMAS) else None))
CONSTRAINTS.register("title")(ConstraintKind(
    instruction=lambda: "Give your answer a title wrapped in double angle brackets, such as <<my title>>.",
    check=lambda text: _TITLE.search(text) is not None,
    min_words=lambda: 1))
CONSTRAINTS.register("json_keys")(ConstraintKind(
    instruction=lambda keys: f"Answer only with a JSON object that has the keys {_quoted(keys)}.",
    check=lambda text, keys: (obj := _json_object(text)) is not None and all(k in obj for k in keys),
    params={"keys": _keys}, choices=tuple({"keys": list(k)} for k in JSON_KEYS),
    min_words=lambda keys: sum(len(words(k)) for k in keys),  # each key is written out once
    needs=_json_needs,
    excludes={"bullets": "a JSON object has no bullet lines", "end_phrase": "a JSON object ends with '}'"}))


# --- a constraint, read and checked ----------------------------------------------------------

@dataclass(frozen=True)
class Constraint:
    """A kind and its (validated) parameters; build it with :func:`parse_constraint`."""

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> ConstraintKind:
        return CONSTRAINTS.get(self.kind)

    def instruction(self) -> str:
        """The sentence that asks for it in a prompt.

        >>> Constraint("json_keys", {"keys": ("a", "b")}).instruction()
        'Answer only with a JSON object that has the keys "a" and "b".'
        """
        return self.spec.instruction(**self.params)

    def check(self, text: str) -> bool:
        """Whether ``text`` satisfies it."""
        return bool(self.spec.check(normalise(text), **self.params))

    def to_dict(self) -> dict:
        """As a row stores it: ``{"kind": ..., "params": {...}}`` (``params`` left out when empty)."""
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()}
        return {"kind": self.kind, "params": params} if params else {"kind": self.kind}

    def __str__(self) -> str:
        """``kind(name=value, ...)``.

        >>> str(Constraint("max_words", {"n": 15})), str(Constraint("lowercase"))
        ('max_words(n=15)', 'lowercase')
        """
        args = ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v!r}" for k, v in self.params.items())
        return f"{self.kind}({args})" if args else self.kind


def _quoted(keys: Sequence[str]) -> str:
    """``"a"``, ``"a" and "b"``, ``"a", "b" and "c"``."""
    items = [json.dumps(k) for k in keys]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def parse_constraint(raw: Any, where: str = "constraint") -> Constraint:
    """One constraint from its stored form, every parameter checked; a :class:`ConstraintError`
    names ``where``, the kind and the parameter.

    >>> parse_constraint({"kind": "bullets", "params": {"n": "three"}})
    Traceback (most recent call last):
    ...
    selfrl.data.constraints.ConstraintError: constraint (bullets): parameter 'n' must be an integer \
from 1 to 20, got 'three'
    """
    if not isinstance(raw, Mapping) or not isinstance(raw.get("kind"), str):
        raise ConstraintError(f"{where}: expected {{'kind': NAME, 'params': {{...}}}}, got {raw!r}")
    extra = sorted(set(raw) - {"kind", "params"})
    if extra:
        raise ConstraintError(f"{where} ({raw['kind']}): unknown field {extra[0]!r}; a constraint has 'kind' "
                              f"and 'params'")
    kind, params = raw["kind"], raw.get("params") or {}
    if kind not in CONSTRAINTS:
        names = CONSTRAINTS.names()
        raise ConstraintError(f"{where}: unknown constraint kind {kind!r}{did_you_mean(kind, names)}; "
                              f"valid kinds: {', '.join(names)}")
    if not isinstance(params, Mapping):
        raise ConstraintError(f"{where} ({kind}): 'params' must be an object, got {params!r}")
    spec = CONSTRAINTS.get(kind)
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        valid = ", ".join(map(repr, spec.params)) or "none"
        raise ConstraintError(f"{where} ({kind}): unknown parameter {unknown[0]!r}"
                              f"{did_you_mean(unknown[0], list(spec.params))}; its parameters: {valid}")
    clean = {}
    for name, validate in spec.params.items():
        if name not in params:
            raise ConstraintError(f"{where} ({kind}): missing parameter {name!r}")
        try:
            clean[name] = validate(params[name])
        except ValueError as e:
            raise ConstraintError(f"{where} ({kind}): parameter {name!r} {e}") from None
    return Constraint(kind, clean)


def parse_constraints(raw: Any, where: str = "") -> list[Constraint]:
    """A row's constraints from their stored form: a non-empty list, each kind at most once, every
    parameter checked, and all of them satisfiable together (:func:`check_satisfiable`).

    >>> parse_constraints([{"kind": "lowercse"}], where="test.jsonl:3")
    Traceback (most recent call last):
    ...
    selfrl.data.constraints.ConstraintError: test.jsonl:3: constraints[0]: unknown constraint kind \
'lowercse' (did you mean 'lowercase'?); valid kinds: bullets, end_phrase, exclude_word, include_keyword, \
json_keys, lowercase, max_words, min_words, no_commas, title
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(raw, list) or not raw:
        raise ConstraintError(f"{prefix}constraints must be a non-empty list of "
                              f"{{'kind': ..., 'params': ...}}, got {raw!r}")
    out = [parse_constraint(c, f"{prefix}constraints[{i}]") for i, c in enumerate(raw)]
    kinds = [c.kind for c in out]
    twice = sorted({k for k in kinds if kinds.count(k) > 1})
    if twice:
        raise ConstraintError(f"{prefix}constraint kind {twice[0]!r} given {kinds.count(twice[0])} times; "
                              f"give each kind once")
    check_satisfiable(out, where)
    return out


def conflict(a: Constraint, b: Constraint) -> str | None:
    """Why no response can satisfy both ``a`` and ``b`` (``None``: one can, as far as the kinds'
    declarations tell).

    >>> keyword = Constraint("include_keyword", {"word": "good"})
    >>> conflict(keyword, Constraint("exclude_word", {"word": "Good"}))
    "include_keyword needs 'good', which exclude_word rules out: it is the word 'Good'"
    """
    for x, y in ((a, b), (b, a)):
        if y.kind in x.spec.excludes:
            return x.spec.excludes[y.kind]
        low, high = x.spec.min_words(**x.params), y.spec.max_words(**y.params)
        if high is not None and low > high:
            return f"{x.kind} needs at least {low} words, {y.kind} allows at most {high}"
        for need in x.spec.needs(**x.params):
            reason = y.spec.forbids(need, **y.params)
            if reason:
                return f"{x.kind} needs {need}, which {y.kind} rules out: {reason}"
    return None


def check_satisfiable(constraints: Sequence[Constraint], where: str = "") -> None:
    """Raise a :class:`ConstraintError` naming the first two constraints that cannot both hold.

    Pairs are enough for the shipped kinds: word bounds conflict through their tightest pair, a
    forbidden text through the constraint that needs it.
    """
    prefix = f"{where}: " if where else ""
    for i, a in enumerate(constraints):
        for j in range(i + 1, len(constraints)):
            reason = conflict(a, constraints[j])
            if reason:
                raise ConstraintError(f"{prefix}constraints[{i}] ({a.kind}) and constraints[{j}] "
                                      f"({constraints[j].kind}) cannot both hold: {reason}")


def satisfied(text: str, constraints: Sequence[Constraint]) -> list[bool]:
    """Each constraint's verdict on ``text``, in order.

    >>> satisfied("<<Tides>>\\n- the ocean moves", parse_constraints([
    ...     {"kind": "title"}, {"kind": "bullets", "params": {"n": 2}}, {"kind": "no_commas"}]))
    [True, False, True]
    """
    return [c.check(text) for c in constraints]


def describe(constraints: Sequence[Constraint]) -> str:
    """The constraints in one line (what an evaluation row shows as its ``gold``).

    >>> describe([Constraint("lowercase"), Constraint("max_words", {"n": 15})])
    'lowercase; max_words(n=15)'
    """
    return "; ".join(map(str, constraints))
