"""The embedded model's tokenizer: byte-level BPE with one token per digit, and a chat template.

One token per digit lets a small model learn column arithmetic; byte-level BPE keeps any
text representable (a user's own prompts included) while common words become one token.

>>> tok = build_tokenizer(["Mia has 12 apples."], vocab_size=300)
>>> tok.convert_ids_to_tokens(tok("has 12")["input_ids"])
['has', 'Ġ1', '2']
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

PAD, BOS, EOS = "<|endoftext|>", "<|im_start|>", "<|im_end|>"

# ChatML, as Qwen2 uses.  Rendering the prompt with add_generation_prompt=True is a prefix
# of rendering the whole conversation, which completion-only losses rely on.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tokenizer(texts: Iterable[str], vocab_size: int = 1024):
    """Train the BPE tokenizer on ``texts`` and wrap it as a transformers fast tokenizer."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # One digit per token, the leading space kept on the first digit (" 12" -> "Ġ1", "2"): a
    # number copied from the question then starts with the same token as in the question,
    # which an induction head can find after one matching word ("finds Ġ6" -> "finds" ... "Ġ6").
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r" ?[0-9]"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, pad_token=PAD, bos_token=None,
        padding_side="left", model_max_length=1024,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast
