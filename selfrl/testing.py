"""Helpers for tests and benchmarks: a tiny random model (the embedded model's layout) built on the fly.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     (tiny_random_model(tmp, hidden_size=16, num_layers=1) / "config.json").is_file()
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
    from selfrl.prompts import (
        SELF_INSTRUCT_SYSTEM,
        SERL_JUDGE_TEMPLATE,
        SRL_SYSTEM,
        SRL_TEMPLATE,
        SRR1_JUDGE_TEMPLATE,
    )
    from selfrl.tiny.build import TinyBuildConfig, make_model, to_llama
    from selfrl.tiny.tokenizer import build_tokenizer

    if vocab_texts is None:
        gen = ArithGenerator(ArithSpec(), seed)
        vocab_texts = [p.question + "\n" + p.solution for p in (gen.sample() for _ in range(300))]
        vocab_texts += [SELF_INSTRUCT_SYSTEM, SERL_JUDGE_TEMPLATE, SRR1_JUDGE_TEMPLATE,
                        SRL_SYSTEM + "\n\n" + SRL_TEMPLATE]  # the one-turn text of before: same vocabulary
    tok = build_tokenizer(vocab_texts, vocab_size=400)
    cfg = TinyBuildConfig(seed=seed, hidden_size=hidden_size, num_layers=num_layers,
                          intermediate_size=intermediate_size or 2 * hidden_size, num_heads=num_heads,
                          num_kv_heads=num_heads)
    model = to_llama(make_model(cfg, tok))
    output = Path(output)
    model.save_pretrained(output)
    tok.save_pretrained(output)
    return output


def tiny_gguf(output: str | Path, seed: int = 0, architecture: str = "llama",
              hidden_size: int = 32, num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2,
              truncate_to: int | None = None) -> tuple[Path, Path]:
    """Write a random Llama as a float32 GGUF file the way llama.cpp's converter lays it out (its
    q/k rows permuted for llama.cpp's rotary layout), with a byte-level BPE tokenizer and a ChatML
    template.  Returns ``(gguf_file, hf_folder)``: the same model saved as a Hugging Face folder,
    the reference an import must reproduce.  ``architecture`` only changes the name written in
    the header (to test refusals); ``truncate_to`` cuts the file to that many bytes.
    """
    import gguf
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from selfrl.tiny.tokenizer import CHAT_TEMPLATE

    output = Path(output)
    hf_folder = output / "hf"
    tok = tiny_random_model(output / "tok", hidden_size=8, num_layers=1)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tok)
    vocab = tokenizer.backend_tokenizer.get_vocab()  # token -> id
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [" ".join(m) if isinstance(m, (list, tuple)) else m
              for m in __import__("json").loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]]
    specials = {tokenizer.pad_token, tokenizer.eos_token, "<|im_start|>"}
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokens), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                      num_hidden_layers=num_layers, num_attention_heads=num_heads,
                      num_key_value_heads=num_kv_heads, max_position_embeddings=256, rms_norm_eps=1e-5,
                      tie_word_embeddings=False, bos_token_id=vocab["<|im_start|>"],
                      eos_token_id=vocab[tokenizer.eos_token], pad_token_id=vocab[tokenizer.pad_token])
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # random norms too, so that a misplaced tensor shows in the logits
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    model.save_pretrained(hf_folder)
    tokenizer.save_pretrained(hf_folder)

    def permute(w: torch.Tensor, heads: int) -> torch.Tensor:  # llama.cpp's rotary row order
        return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    file = output / "model.gguf"
    w = gguf.GGUFWriter(str(file), architecture)
    w.add_name("tiny test model")
    w.add_context_length(256)
    w.add_embedding_length(hidden_size)
    w.add_block_count(num_layers)
    w.add_feed_forward_length(2 * hidden_size)
    w.add_head_count(num_heads)
    w.add_head_count_kv(num_kv_heads)
    w.add_rope_dimension_count(hidden_size // num_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in specials else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(cfg.bos_token_id)
    w.add_eos_token_id(cfg.eos_token_id)
    w.add_pad_token_id(cfg.pad_token_id)
    w.add_add_bos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
                 "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(num_layers):
        for hf, gg in per_layer.items():
            names[f"model.layers.{i}.{hf}.weight"] = f"blk.{i}.{gg}.weight"
    for hf, gg in names.items():
        t = sd[hf]
        if hf.endswith("q_proj.weight"):
            t = permute(t, num_heads)
        elif hf.endswith("k_proj.weight"):
            t = permute(t, num_kv_heads)
        w.add_tensor(gg, t.numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if truncate_to is not None:
        with open(file, "r+b") as f:
            f.truncate(truncate_to)
    return file, hf_folder
