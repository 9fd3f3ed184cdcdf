"""Completion logprobs from the decoder's hidden states, the output layer applied in chunks.

The plain path asks the model for logits ``(B, C, V)`` and takes a log-softmax over them: with a
real vocabulary (SmolLM2: 49,152; Qwen2.5: 151,936) that tensor and its copies (the temperature
division, the log-softmax, the entropy's softmax, their gradients) are most of an update's memory
and a good share of its time, though only ``B * C`` numbers are wanted.  Here the output layer
runs over a few hundred positions at a time, only on completion tokens (padding skipped), and
keeps per position just the log-normaliser; backward recomputes each chunk's logits (one more
output-layer matmul) instead of storing them.  The logprobs and gradients are those of the plain
path up to float rounding (``tests/test_speed_equivalence.py``).

:func:`OutputHead.probe` checks, once per model, that ``linear(decoder(x))`` gives the model's
own logits; a model whose logits are more than that (soft-capping, a scale, a LoRA-adapted
output layer) keeps the plain path.

>>> import torch
>>> h, w = torch.randn(5, 4), torch.randn(7, 4)
>>> t = torch.tensor([0, 1, 2, 3, 4])
>>> lp, _ = linear_logprobs(h, w, None, t, temperature=0.5, chunk_rows=2)
>>> ref = torch.log_softmax(h @ w.T / 0.5, -1).gather(-1, t[:, None]).squeeze(-1)
>>> bool(torch.allclose(lp, ref, atol=1e-5))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Rows of logits computed at once: ~8 M numbers (32 MB in fp32), whatever the vocabulary.
CHUNK_NUMBERS = 1 << 23


@dataclass
class OutputHead:
    """A causal LM split into its decoder (ids → hidden states) and a plain linear output layer."""

    decoder: torch.nn.Module
    linear: torch.nn.Linear

    @staticmethod
    def probe(model) -> OutputHead | None:
        """The split when it reproduces ``model``'s logits on a short input, else ``None``."""
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT
        get_decoder = getattr(base, "get_decoder", None)
        linear = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
        if get_decoder is None or type(linear) is not torch.nn.Linear:
            return None
        decoder = get_decoder()
        if decoder is None or decoder is base:
            return None
        device = linear.weight.device
        ids = torch.arange(1, 5, device=device).clamp(max=linear.out_features - 1)[None]  # (1, 4)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                want = model(input_ids=ids, use_cache=False).logits.float()  # (1, 4, V)
                hidden = decoder(input_ids=ids, use_cache=False).last_hidden_state
                got = linear(hidden).float()
        except Exception:  # any architecture whose decoder cannot be called alone keeps the plain path
            return None
        finally:
            model.train(was_training)
        if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-3, atol=1e-3):
            return None
        return OutputHead(decoder, linear)


def linear_logprobs(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    target: torch.Tensor, temperature: float = 1.0, with_entropy: bool = False,
                    chunk_rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logprobs ``(N,)`` of ``target`` under ``softmax(linear(hidden) / temperature)`` and the
    entropy ``(N,)`` (detached) when asked, from ``hidden`` ``(N, H)``, without materialising
    the ``(N, V)`` logits for backward."""
    rows = chunk_rows or max(1, CHUNK_NUMBERS // weight.shape[0])
    lp, ent = _LinearLogprobs.apply(hidden, weight, bias, target, float(temperature), rows, with_entropy)
    return lp, (ent if with_entropy else None)


class _LinearLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, target, temperature, rows, with_entropy):
        dtype = torch.get_autocast_dtype(hidden.device.type) \
            if torch.is_autocast_enabled(hidden.device.type) else hidden.dtype
        N, acc = hidden.shape[0], torch.promote_types(dtype, torch.float32)  # fp32 (fp64 stays fp64)
        lp = torch.empty(N, device=hidden.device, dtype=acc)   # (N,)
        lse = torch.empty(N, device=hidden.device, dtype=acc)  # (N,) the log-normaliser of each row
        ent = torch.zeros(N, device=hidden.device, dtype=acc)  # (N,)
        for s in range(0, N, rows):
            logits = _logits(hidden[s:s + rows], weight, bias, dtype, temperature)  # (n, V) fp32
            norm = torch.logsumexp(logits, -1)  # (n,)
            lse[s:s + rows] = norm
            lp[s:s + rows] = logits.gather(-1, target[s:s + rows, None]).squeeze(-1) - norm
            if with_entropy:  # H = log Z - sum p * logit
                p = (logits - norm[:, None]).exp_()  # (n, V)
                ent[s:s + rows] = norm - (p * logits).sum(-1)
        ctx.save_for_backward(hidden, weight, bias, target, lse)
        ctx.temperature, ctx.rows, ctx.dtype = temperature, rows, dtype
        ctx.mark_non_differentiable(ent)
        return lp, ent

    @staticmethod
    def backward(ctx, grad_lp, grad_ent):  # noqa: ARG004 (the entropy is a metric, never trained)
        hidden, weight, bias, target, lse = ctx.saved_tensors
        T, rows, dtype = ctx.temperature, ctx.rows, ctx.dtype
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = grad_b = None
        for s in range(0, hidden.shape[0], rows):
            h, g = hidden[s:s + rows], grad_lp[s:s + rows].to(lse.dtype)  # (n, H), (n,)
            logits = _logits(h, weight, bias, dtype, T)  # (n, V)
            # d lp / d logit_v = (onehot_v - softmax_v) / T
            d = (logits - lse[s:s + rows, None]).exp_().mul_(-g[:, None])  # (n, V)
            d.scatter_add_(-1, target[s:s + rows, None], g[:, None])
            d.div_(T)
            if need_h:
                grad_h[s:s + rows] = (d.to(dtype) @ weight.to(dtype)).to(hidden.dtype)  # (n, H)
            if need_w:  # (V, H), accumulated in place: no (V, H) temporary per chunk
                dw = d.to(dtype).T
                grad_w = (dw @ h.to(dtype)).to(lse.dtype) if grad_w is None else \
                    grad_w.addmm_(dw.to(grad_w.dtype), h.to(grad_w.dtype))
            if need_b:
                grad_b = d.sum(0) if grad_b is None else grad_b.add_(d.sum(0))
        return (grad_h, None if grad_w is None else grad_w.to(weight.dtype),
                None if grad_b is None else grad_b.to(bias.dtype), None, None, None, None)


def _logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype,
            temperature: float) -> torch.Tensor:
    out = F.linear(h.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype))
    out = out.to(torch.promote_types(dtype, torch.float32))  # (n, V) softmax maths in fp32 at least
    return out.div_(temperature) if temperature != 1.0 else out
