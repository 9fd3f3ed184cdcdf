"""A trained pairwise reward model as a reward (classic RLHF's PPO stage).

Each completion is scored as ``Question: {question}\\n\\nAnswer: {completion}`` (the format
the reward model was trained on, :mod:`selfrl.rlhf.rm`), batched, on the model's own
device, minus a constant ``baseline`` (the StackExchange RLHF recipe subtracts the mean
score of its SFT model's answers so that rewards centre near zero).  The model loads on
first use, so a config naming it costs nothing until the trainer scores.

For a reward model served elsewhere, use the ``http`` reward.
"""

from __future__ import annotations

from selfrl.rewards.base import RewardBatch, RewardError, RewardResult, mean
from selfrl.rewards.registry import register_reward


@register_reward("reward_model")
class RewardModelReward:
    """Score completions with a one-output sequence classifier, minus ``baseline``.

    Args:
        model: the reward model folder (``selfrl rm train`` writes ``OUTPUT/model``).
        baseline: subtracted from every score.
        question_field: the row field holding the question (else the prompt text is used).
        template: the scored text; ``{question}`` and ``{response}`` are filled in.
        batch_size: texts scored together.
        device: where the reward model runs (``cpu``, ``cuda``, ``cuda:1`` …).
        name: the name used in logs and errors.

    Metrics: ``raw_mean`` (the score before the baseline).
    """

    name = "reward_model"

    def __init__(self, model: str, baseline: float = 0.0, question_field: str = "question",
                 template: str | None = None, batch_size: int = 32, device: str = "cpu",
                 name: str | None = None) -> None:
        from selfrl.rlhf.rm import TEMPLATE

        self.path, self.baseline, self.question_field = model, float(baseline), question_field
        self.template = template or TEMPLATE
        self.batch_size, self.device = batch_size, device
        self._model = self._tokenizer = None
        if name is not None:
            self.name = name

    def _load(self) -> None:
        from selfrl.rlhf.rm import load_reward_model

        try:
            self._model, self._tokenizer = load_reward_model(self.path, self.device)
        except (OSError, ValueError) as e:
            raise RewardError(f"reward {self.name}: {e}") from None

    def __call__(self, batch: RewardBatch) -> RewardResult:
        from selfrl.rlhf.rm import score_texts

        if self._model is None:
            self._load()
        texts = [self.template.format(question=row.get(self.question_field, prompt), response=completion)
                 for prompt, completion, row in zip(batch.prompts, batch.completions, batch.rows)]
        raw = score_texts(self._model, self._tokenizer, texts, self.batch_size)
        return RewardResult([s - self.baseline for s in raw], {"raw_mean": mean(raw)})
