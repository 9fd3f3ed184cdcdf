"""Helpers for tests and benchmarks: a tiny random model (the embedded model's layout) built on the fly.

>>> import tempfile
>>> path = tiny_random_model(tempfile.mkdtemp(), hidden_size=16, num_layers=1)
>>> (path / "config.json").is_file()
True
"""

from __future__ import annotations

from pathlib import Path


def tiny_random_model(output: str | Path, hidden_size: int = 32, num_layers: int = 2,
                      intermediate_size: int | None = None, num_heads: int = 2, seed: int = 0,
                      vocab_texts: list[str] | None = None) -> Path:
    """Save a randomly initialised model built as the embedded one is (``make_model``, then
    ``to_llama``) and a BPE tokenizer (with chat template)."""
    from selfrl.data.arith import ArithGenerator, ArithSpec
    from selfrl.prompts import SELF_INSTRUCT_SYSTEM, SERL_JUDGE_TEMPLATE, SRL_TEMPLATE, SRR1_JUDGE_TEMPLATE
    from selfrl.tiny.build import TinyBuildConfig, make_model, to_llama
    from selfrl.tiny.tokenizer import build_tokenizer

    if vocab_texts is None:
        gen = ArithGenerator(ArithSpec(), seed)
        vocab_texts = [p.question + "\n" + p.solution for p in (gen.sample() for _ in range(300))]
        vocab_texts += [SELF_INSTRUCT_SYSTEM, SERL_JUDGE_TEMPLATE, SRR1_JUDGE_TEMPLATE, SRL_TEMPLATE]
    tok = build_tokenizer(vocab_texts, vocab_size=400)
    cfg = TinyBuildConfig(seed=seed, hidden_size=hidden_size, num_layers=num_layers,
                          intermediate_size=intermediate_size or 2 * hidden_size, num_heads=num_heads,
                          num_kv_heads=num_heads)
    model = to_llama(make_model(cfg, tok))
    output = Path(output)
    model.save_pretrained(output)
    tok.save_pretrained(output)
    return output
