"""Probe how fast a model of the embedded shape learns to *solve* arith problems.

A plain PyTorch SFT loop on solving rows only (no TRL, no multi-task mix), for a fixed wall
time, then greedy accuracy on held-out problems and a breakdown of the errors: equations
whose arithmetic is wrong, and restated sentences with a number copied wrong.  It is how the
embedded model's defaults were chosen (RESULTS.md, "solve-only probes"); it is not the build.

    python scripts/probe_solve_sft.py --minutes 7 --batch-size 8 --max-number 10 --max-value 40
"""

from __future__ import annotations

import argparse
import math
import re
import time

import torch

from selfrl.data.arith import ArithGenerator, ArithSpec
from selfrl.eval.extract import extract_answer
from selfrl.models import embedded_model_path, load_tokenizer
from selfrl.prompts import solve_messages
from selfrl.tiny.build import TinyBuildConfig, make_model

EQUATION = re.compile(r"(\d+) ([-+*]) (\d+) = (\d+)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--max-number", type=int, default=ArithSpec.max_number)
    ap.add_argument("--max-value", type=int, default=ArithSpec.max_value)
    ap.add_argument("--n-test", type=int, default=150)
    a = ap.parse_args()
    torch.set_num_threads(2)
    tok = load_tokenizer(embedded_model_path())
    spec = ArithSpec(max_number=a.max_number, max_value=a.max_value)
    tests = [p for p, _ in zip(iter(ArithGenerator(spec, 999).sample, None), range(a.n_test))]
    held_out = {p.question for p in tests}
    gen = ArithGenerator(spec, 5)
    model = make_model(TinyBuildConfig(), tok)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01, betas=(0.9, 0.95))

    def example() -> tuple[list[int], list[int]]:
        p = gen.sample()
        while p.question in held_out:
            p = gen.sample()
        prompt = tok.apply_chat_template(solve_messages(p.question), add_generation_prompt=True,
                                         tokenize=True, return_dict=False)
        completion = tok(p.solution + tok.eos_token)["input_ids"]
        return prompt + completion, [-100] * len(prompt) + completion

    t0, step = time.time(), 0
    while (elapsed := time.time() - t0) < a.minutes * 60:
        rows = [example() for _ in range(a.batch_size)]
        T = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), T), tok.pad_token_id)
        labels = torch.full((len(rows), T), -100)
        attn = torch.zeros((len(rows), T), dtype=torch.long)
        for i, (x, y) in enumerate(rows):
            ids[i, :len(x)], labels[i, :len(y)], attn[i, :len(x)] = torch.tensor(x), torch.tensor(y), 1
        warm = min(1.0, (step + 1) / 30)
        cosine = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * elapsed / (a.minutes * 60)))
        for g in opt.param_groups:
            g["lr"] = a.lr * warm * cosine
        model(input_ids=ids, attention_mask=attn, labels=labels).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        step += 1

    model.eval()
    right = wrong_eq = equations = wrong_copy = 0
    for s in range(0, len(tests), 50):
        batch = tests[s:s + 50]
        texts = [tok.apply_chat_template(solve_messages(p.question), add_generation_prompt=True,
                                         tokenize=False) for p in batch]
        enc = tok(texts, return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=110, do_sample=False, pad_token_id=tok.pad_token_id)
        for p, o in zip(batch, out):
            text = tok.decode(o[enc["input_ids"].shape[1]:], skip_special_tokens=True)
            right += str(extract_answer(text)) == str(p.answer)
            lines = [ln.split(". ", 1)[-1] for ln in text.splitlines() if re.match(r"\d+\.", ln)]
            for gold, got in zip(p.steps, lines):
                wrong_copy += gold.split(":")[0] != got.split(":")[0]
                if m := EQUATION.search(got):
                    x, op, y, z = int(m[1]), m[2], int(m[3]), int(m[4])
                    equations += 1
                    wrong_eq += {"+": x + y, "-": x - y, "*": x * y}[op] != z
    print(f"steps {step}  greedy pass@1 {right / len(tests):.3f}  wrong equations {wrong_eq}/{equations}"
          f"  sentences copied wrong {wrong_copy}")


if __name__ == "__main__":
    main()
