"""A trained pairwise reward model as a reward (classic RLHF's PPO stage).

Each completion is scored as ``Question: {question}\\n\\nAnswer: {completion}`` (:data:`TEMPLATE`,
the format the reward model was trained on by :mod:`selfrl.rlhf.rm`), batched, on the model's own
device, minus a constant ``baseline`` (the StackExchange RLHF recipe subtracts the mean
score of its SFT model's answers so that rewards centre near zero).  The model loads on
first use, so a config naming it costs nothing until the trainer scores.

For a reward model served elsewhere, use the ``http`` reward.
"""

from __future__ import annotations

from selfrl.rewards.base import RewardBatch, RewardError, RewardResult, mean
from selfrl.rewards.registry import register_reward

TEMPLATE = "Question: {question}\n\nAnswer: {response}"


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
        self.path, self.baseline, self.question_field = model, float(baseline), question_field
        self.template = template or TEMPLATE
        self.batch_size, self.device = batch_size, device
        self._model = self._tokenizer = None
        if name is not None:
            self.name = name

    def _load(self) -> None:
        try:
            self._model, self._tokenizer = load_reward_model(self.path, self.device)
        except (OSError, ValueError) as e:
            raise RewardError(f"reward {self.name}: {e}") from None

    def __call__(self, batch: RewardBatch) -> RewardResult:
        if self._model is None:
            self._load()
        texts = [self.template.format(question=row.get(self.question_field, prompt), response=completion)
                 for prompt, completion, row in zip(batch.prompts, batch.completions, batch.rows)]
        raw = score_texts(self._model, self._tokenizer, texts, self.batch_size)
        return RewardResult([s - self.baseline for s in raw], {"raw_mean": mean(raw)})


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of a scored text: the text, then EOS (the classifier reads the last token)."""
    return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def load_reward_model(path: str, device: str = "cpu"):
    """A one-output sequence classifier and its tokenizer; a clear error for any other head."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from selfrl.models import ModelNotFoundError, load_tokenizer, resolve_model_path

    resolved = resolve_model_path(path)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(resolved, dtype=torch.float32)
    except OSError as e:
        raise ModelNotFoundError(f"could not load a reward model from {resolved!r}: {e}") from None
    if model.config.num_labels != 1:
        raise ValueError(f"{resolved}: a reward model needs one output (num_labels=1); "
                         f"this one has {model.config.num_labels}")
    tokenizer = load_tokenizer(resolved)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer


def score_texts(model, tokenizer, texts: list[str], batch_size: int = 32) -> list[float]:
    """Reward-model scores of full texts (batched, right-padded; the head reads the last token)."""
    import torch  # not at the top: importing selfrl.rewards stays light

    device = next(model.parameters()).device
    scores: list[float] = []
    for start in range(0, len(texts), batch_size):
        ids = [encode(tokenizer, t) for t in texts[start:start + batch_size]]
        width = max(map(len, ids))
        input_ids = torch.full((len(ids), width), tokenizer.pad_token_id)  # (b, L)
        mask = torch.zeros((len(ids), width), dtype=torch.long)  # (b, L)
        for i, row in enumerate(ids):
            input_ids[i, :len(row)] = torch.tensor(row)
            mask[i, :len(row)] = 1
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits  # (b, 1)
        scores.extend(logits[:, 0].float().tolist())
    return scores
