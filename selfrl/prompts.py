"""Prompt builders shared by the data views, the embedded model's training mix and the recipes.

Each builder returns chat messages (a list of ``{"role", "content"}`` dicts) so that any
tokenizer's chat template can render them.  The wording follows each paper's prompt, kept
short because the embedded model reads every token on a 2-core CPU.

>>> solve_messages("What is 2 + 3?")[-1]["content"]
'What is 2 + 3?'
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

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


@dataclass(frozen=True)
class PromptFormat:
    """How a data row becomes the prompt the model sees.

    Args:
        template: the user turn, with ``{field}`` placeholders filled from the row (e.g.
            ``"{question} Answer with the final number as 'The answer is N.'"``); ``None``: the
            row's own chat ``prompt`` when it has one, else its question as it stands.
        system: a system turn put first (``None``: none, so the chat template's default applies).
        chat: render through the tokenizer's chat template; ``False``: the text as it stands
            (e.g. the StackExchange RLHF format ``"Question: {question}\n\nAnswer: "``).

    >>> fmt = PromptFormat(template="{question} Answer briefly.", system="Be exact.")
    >>> [m["content"] for m in fmt.messages({"question": "2 + 2?"}, "question")]
    ['Be exact.', '2 + 2? Answer briefly.']
    >>> PromptFormat(template="Q: {question}\\nA:", chat=False).text({"question": "2 + 2?"}, "question")
    'Q: 2 + 2?\\nA:'
    """

    template: str | None = None
    system: str | None = None
    chat: bool = True

    def fields(self) -> list[str]:
        """The row fields the template reads."""
        if self.template is None:
            return []
        return [f for _, f, _, _ in string.Formatter().parse(self.template) if f]

    def messages(self, row: dict, question_field: str) -> Messages:
        if self.template is None and isinstance(row.get("prompt"), list):
            messages = list(row["prompt"])
        else:
            content = self.template.format(**row) if self.template is not None else str(row[question_field])
            messages = solve_messages(content)
        if self.system is not None:
            messages = [{"role": "system", "content": self.system}] + [m for m in messages
                                                                       if m["role"] != "system"]
        return messages

    def text(self, row: dict, question_field: str) -> str:
        """The prompt as plain text (no chat template): the turns' contents, one per line."""
        return "\n".join(m["content"] for m in self.messages(row, question_field))

    def ids(self, tokenizer, row: dict, question_field: str) -> list[int]:
        """Token ids of the row's prompt, ending where the model's answer starts."""
        if self.chat and getattr(tokenizer, "chat_template", None):
            return list(tokenizer.apply_chat_template(self.messages(row, question_field),
                                                      add_generation_prompt=True, tokenize=True,
                                                      return_dict=False))
        return tokenizer(self.text(row, question_field))["input_ids"]


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
