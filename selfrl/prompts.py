"""Prompt builders shared by the data views, the embedded model's training mix and the recipes.

Each builder returns chat messages (a list of ``{"role", "content"}`` dicts) so that any
tokenizer's chat template can render them.  The wording follows each paper's prompt, kept
short because the embedded model reads every token on a 2-core CPU.

>>> solve_messages("What is 2 + 3?")[-1]["content"]
'What is 2 + 3?'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from selfrl.config.loader import StrictModel

Messages = list[dict[str, str]]

SELF_INSTRUCT_SYSTEM = (
    "You are a teacher. Write one new, self-contained math word problem like the examples. "
    "Do not solve it."
)
SELF_INSTRUCT_USER = "Come up with a series of questions:"

SERL_JUDGE_TEMPLATE = (
    "Select the output, (1) or (2), that best answers the instruction. "
    "Answer only with \\boxed{{1}} or \\boxed{{2}}.\n\n"
    "# Instruction:\n{instruction}\n\n# Output (1):\n{output_1}\n\n# Output (2):\n{output_2}\n\n"
    "# Which is best, (1) or (2)?"
)

SRR1_JUDGE_TEMPLATE = (
    "Compare two responses to the question. Judge correctness, logical completeness, "
    "explanation of key ideas, notation, overall quality and relevance. "
    "End with exactly 'Winner: response A' or 'Winner: response B'.\n\n"
    "Question:\n{question}\n\nResponse A:\n{response_a}\n\nResponse B:\n{response_b}"
)

SRL_SYSTEM = (
    "Solve the problem step by step. Given the previous steps, think inside <think></think>, "
    "then write only the next step."
)
SRL_TEMPLATE = "Problem: {problem}\n\nPrevious steps:\n{previous}"  # SRL's user turn


def solve_messages(question: str) -> Messages:
    """The chat prompt that asks the model to solve ``question``."""
    return [{"role": "user", "content": question}]


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def template_fields(template: str) -> list[str]:
    """The ``{field}`` placeholders of a prompt template, in order.

    >>> template_fields("{question}\\nPut the answer in \\\\boxed{}. {{literal}}")
    ['question']
    """
    return [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)]


def fill_template(template: str, row: dict) -> str:
    """``template`` with each ``{field}`` replaced by ``row[field]``.

    Only a brace around a plain name is a placeholder (``{{`` and ``}}`` are literal braces, as in
    ``str.format``), so that a template can ask for ``\\boxed{}`` as it is usually written.

    >>> fill_template("{question} Put the answer in \\\\boxed{}.", {"question": "2 + 2?"})
    '2 + 2? Put the answer in \\\\boxed{}.'
    """
    def fill(m: re.Match) -> str:
        if m.group(1) is None:
            return m.group(0)[0]
        return str(row[m.group(1)])

    return _PLACEHOLDER.sub(fill, template)


LongPromptPolicy = Literal["skip", "truncate_left"]


@dataclass(frozen=True)
class FittedPrompts:
    """Prompts held to a length limit: ``ids[i]`` is the prompt of ``rows[kept[i]]``;
    ``too_long`` indexes the rows whose prompt was longer than the limit (left out, or cut on the
    left, as the policy says)."""

    ids: list[list[int]]
    kept: list[int]
    too_long: list[int]


@dataclass(frozen=True)
class PromptFormat:
    """How a data row becomes the prompt the model sees: in training and evaluation alike.

    Args:
        template: the user turn, with ``{field}`` placeholders filled from the row (e.g.
            ``"{question} Answer with the final number as 'The answer is N.'"``); ``None``: the
            row's own chat ``prompt`` when it has one, else its question as it stands.
        system: a system turn put first (``None``: none, so the chat template's default applies).
        chat: render through a chat template; ``False``: the text as it stands (e.g. the
            StackExchange RLHF format ``"Question: {question}\n\nAnswer: "``).
        chat_template_text: a chat template (Jinja) used instead of the tokenizer's own.
        chat_template_kwargs: extra variables for the chat template (``{"enable_thinking": False}``
            for Qwen3's).
        max_tokens: the longest prompt, in tokens (``None``: no limit).
        long_prompts: a longer prompt is left out (``skip``, see :meth:`fit`) or keeps its last
            ``max_tokens`` tokens (``truncate_left``: the question's end and the generation prompt
            stay, the system turn goes first).

    >>> fmt = PromptFormat(template="{question} Answer briefly.", system="Be exact.")
    >>> [m["content"] for m in fmt.messages({"question": "2 + 2?"}, "question")]
    ['Be exact.', '2 + 2? Answer briefly.']
    >>> PromptFormat(template="Q: {question}\\nA:", chat=False).text({"question": "2 + 2?"}, "question")
    'Q: 2 + 2?\\nA:'
    """

    template: str | None = None
    system: str | None = None
    chat: bool = True
    chat_template_text: str | None = None
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    max_tokens: int | None = None
    long_prompts: LongPromptPolicy = "skip"

    def fields(self) -> list[str]:
        """The row fields the template reads."""
        return [] if self.template is None else template_fields(self.template)

    def messages(self, row: dict, question_field: str) -> Messages:
        if self.template is None and isinstance(row.get("prompt"), list):
            messages = list(row["prompt"])
        elif self.template is not None:
            messages = solve_messages(fill_template(self.template, row))
        else:
            messages = solve_messages(str(row[question_field]))
        if self.system is not None:
            messages = [{"role": "system", "content": self.system}] + [m for m in messages
                                                                       if m["role"] != "system"]
        return messages

    def text(self, row: dict, question_field: str) -> str:
        """The prompt as plain text (no chat template): the turns' contents, one per line."""
        return "\n".join(m["content"] for m in self.messages(row, question_field))

    def render(self, tokenizer, messages: Messages) -> list[int]:
        """Token ids of ``messages``, ending where the model's answer starts: through the chat
        template (this format's, else the tokenizer's, with ``chat_template_kwargs``), or, in raw
        mode or for a tokenizer without a template, the turns' contents one per line.  Every
        prompt a run builds goes through here (the recipes' own prompts too)."""
        if self.chat and (self.chat_template_text or getattr(tokenizer, "chat_template", None)):
            return list(tokenizer.apply_chat_template(
                messages, chat_template=self.chat_template_text, add_generation_prompt=True,
                tokenize=True, return_dict=False, **self.chat_template_kwargs))
        return tokenizer("\n".join(m["content"] for m in messages))["input_ids"]

    def ids(self, tokenizer, row: dict, question_field: str) -> list[int]:
        """Token ids of the row's prompt, ending where the model's answer starts (cut to its last
        ``max_tokens`` tokens under ``truncate_left``)."""
        ids = self.render(tokenizer, self.messages(row, question_field))
        if self.max_tokens is not None and self.long_prompts == "truncate_left":
            return ids[-self.max_tokens:]
        return ids

    def fit(self, tokenizer, rows: list[dict], question_field: str) -> FittedPrompts:
        """The prompts of ``rows`` within ``max_tokens``: under ``skip`` the longer ones are left
        out, under ``truncate_left`` cut; both are counted in ``too_long``."""
        ids, kept, too_long = [], [], []
        for i, row in enumerate(rows):
            full = self.render(tokenizer, self.messages(row, question_field))
            if self.max_tokens is not None and len(full) > self.max_tokens:
                too_long.append(i)
                if self.long_prompts == "skip":
                    continue
                full = full[-self.max_tokens:]
            ids.append(full)
            kept.append(i)
        return FittedPrompts(ids, kept, too_long)


class PromptOptions(StrictModel):
    """The prompt options of a training run's ``data`` section and of ``selfrl eval`` (one
    definition: the run config inherits them, the command line builds its flags from them)."""

    prompt_template: str | None = Field(
        None, description="the user turn with {field} placeholders filled from each row, e.g. \"{question} "
                          "Answer with the final number as 'The answer is N.'\" (None: the row's chat "
                          "'prompt', else its question as it stands, or a benchmark's own prompt); used in "
                          "training and evaluation alike")
    system_prompt: str | None = Field(
        None, description="a system turn put before the user turn (None: the chat template's default)")
    chat_template: bool = Field(
        True, description="render prompts through the chat template; false: the text as it stands (e.g. "
                          "prompt_template \"Question: {question}\\n\\nAnswer: \")")
    chat_template_file: str | None = Field(
        None, description="a Jinja chat template file used instead of the tokenizer's own")
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="extra variables for the chat template, e.g. {enable_thinking: "
                                          "false} for Qwen3-style templates")
    max_prompt_tokens: int | None = Field(
        None, ge=1, description="the longest prompt in tokens (None: no limit); longer ones follow "
                                "long_prompts and are counted")
    long_prompts: LongPromptPolicy = Field(
        "skip", description="a prompt longer than max_prompt_tokens: skip (the row is left out) or "
                            "truncate_left (keep its last max_prompt_tokens tokens)")

    @field_validator("chat_template_file")
    @classmethod
    def _template_file_exists(cls, path: str | None) -> str | None:
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{path}: no such file")
        return path

    @field_validator("chat_template_kwargs")
    @classmethod
    def _template_variables_only(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(set(kwargs) & _RENDER_ARGS)
        if reserved:
            raise ValueError(f"{', '.join(reserved)} is set by selfrl itself; pass only the template's own "
                             f"variables (e.g. enable_thinking)")
        return kwargs

    @model_validator(mode="after")
    def _chat_options_need_the_chat_template(self) -> PromptOptions:
        if not self.chat_template and (self.chat_template_file or self.chat_template_kwargs):
            raise ValueError("chat_template_file and chat_template_kwargs shape the chat template, which "
                             "chat_template=false turns off: drop them or the raw mode")
        return self

    def prompt_format(self, default_template: str | None = None) -> PromptFormat:
        """The :class:`PromptFormat` these options describe; ``default_template`` is used when
        ``prompt_template`` is unset (a benchmark's own prompt)."""
        text = Path(self.chat_template_file).read_text(encoding="utf-8") if self.chat_template_file else None
        template = self.prompt_template if self.prompt_template is not None else default_template
        return PromptFormat(template=template, system=self.system_prompt, chat=self.chat_template,
                            chat_template_text=text, chat_template_kwargs=dict(self.chat_template_kwargs),
                            max_tokens=self.max_prompt_tokens, long_prompts=self.long_prompts)


# apply_chat_template's own arguments, which PromptFormat.render sets.
_RENDER_ARGS = {"conversation", "messages", "chat_template", "add_generation_prompt", "tokenize",
                "return_dict", "tools", "documents", "continue_final_message"}


def self_instruct_messages(examples: list[str], system: str = SELF_INSTRUCT_SYSTEM) -> Messages:
    """SeRL's few-shot instruction-generation prompt: ``system`` (the teacher's brief), then a
    numbered list ending at the open number.

    >>> m = self_instruct_messages(["A?", "B?"], system="Write one new riddle.")
    >>> m[0]["content"], m[1]["content"].splitlines()[-1]
    ('Write one new riddle.', '3.')
    """
    lines = [SELF_INSTRUCT_USER]
    lines += [f"{i}. {q}" for i, q in enumerate(examples, start=1)]
    lines.append(f"{len(examples) + 1}.")
    return [{"role": "system", "content": system},
            {"role": "user", "content": "\n".join(lines)}]


_NUMBERED = re.compile(r"^\s*(\d+)[.)]\s*(.*)$")


def parse_numbered_items(text: str) -> list[str]:
    """Parse the problems a model wrote after a self-instruction prompt.

    The output continues the numbered list: its first line is the item at the open number
    (which carries no number); later lines may start new numbered items.

    >>> parse_numbered_items("Tom has 3 pens. How many?\\n10. Ann has 2 cups. How many?")
    ['Tom has 3 pens. How many?', 'Ann has 2 cups. How many?']
    """
    items: list[str] = []
    current: list[str] = []
    for i, line in enumerate(text.splitlines()):
        m = _NUMBERED.match(line)
        if m and (i > 0 or current):
            items.append(" ".join(current))
            current = [m.group(2)]
        elif m:
            current = [m.group(2)]
        else:
            current.append(line)
    items.append(" ".join(current))
    return [" ".join(it.split()) for it in items if it.strip()]


def serl_judge_messages(instruction: str, output_1: str, output_2: str) -> Messages:
    """SERL's AlpacaEval-style pairwise judge prompt (answer ``\\boxed{1}`` or ``\\boxed{2}``)."""
    return [{"role": "user", "content": SERL_JUDGE_TEMPLATE.format(
        instruction=instruction, output_1=output_1, output_2=output_2)}]


def srr1_judge_messages(question: str, response_a: str, response_b: str) -> Messages:
    """SR-R1's rubric judge prompt (answer ends ``Winner: response A|B``)."""
    return [{"role": "user", "content": SRR1_JUDGE_TEMPLATE.format(
        question=question, response_a=response_a, response_b=response_b)}]


def srl_messages(problem: str, previous_steps: list[str]) -> Messages:
    """SRL's prompt, as the paper's: a system turn with the instructions, then a user turn with the
    problem and the expert's first k-1 steps; the model writes step k.

    >>> [m["role"] for m in srl_messages("2 + 3 + 4?", ["2 + 3 = 5."])]
    ['system', 'user']
    """
    previous = "\n".join(f"{i}. {s}" for i, s in enumerate(previous_steps, start=1))
    return [{"role": "system", "content": SRL_SYSTEM},
            {"role": "user", "content": SRL_TEMPLATE.format(problem=problem, previous=previous)}]
