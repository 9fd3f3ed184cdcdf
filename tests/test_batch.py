"""Training tensors: layout of padded sequences and completion logprobs."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from selfrl.trainer.batch import completion_logprobs, pad_sequences


def test_pad_sequences_layout():
    seq = pad_sequences([[1, 5, 6], [1]], [[9, 2], [7, 8, 2]], pad_id=0)
    assert seq.prompt_len == 3
    assert seq.input_ids.tolist() == [[1, 5, 6, 9, 2, 0], [0, 0, 1, 7, 8, 2]]
    assert seq.response_mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    assert seq.position_ids[1, 2:].tolist() == [0, 1, 2, 3]  # positions start at the first real token


def test_completion_logprobs_match_a_full_forward(tiny_model):
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    seq = pad_sequences([[1, 5, 6, 7], [1, 8]], [[9, 10, 11, 2], [12, 2]], pad_id=0)
    logprobs, entropy = completion_logprobs(model, seq, temperature=0.7, with_entropy=True)
    full = model(input_ids=seq.input_ids, attention_mask=seq.attention_mask,
                 position_ids=seq.position_ids).logits[:, seq.prompt_len - 1:-1].float() / 0.7
    ref = full.log_softmax(-1).gather(-1, seq.input_ids[:, seq.prompt_len:, None]).squeeze(-1)
    assert torch.allclose(logprobs, ref, atol=1e-6)
    assert entropy.shape == logprobs.shape and (entropy >= 0).all()
