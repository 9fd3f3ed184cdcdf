"""The RLHF results table: SFT vs PPO on held-out problems, judged by the ground truth and
by the reward model.

    python scripts/rlhf_report.py --sft runs/rlhf_tiny/sft_merged --ppo runs/rlhf_tiny/ppo_merged \
        --rm runs/rlhf_tiny/rm_merged --data data/arith/test.jsonl --limit 500

Prints and writes (``--output``, JSON): greedy pass@1 and the mean reward-model score of each
model's answers; head to head, how often the ground truth prefers PPO's answer (PPO right,
SFT wrong) or SFT's, and ties; and whether reward hacking showed (RM score up while accuracy
went down).
"""

from __future__ import annotations

import argparse
import json

from selfrl.data.io import read_rows
from selfrl.eval.evaluate import EvalSettings, evaluate
from selfrl.models import load_causal_lm, load_tokenizer
from selfrl.prompts import PromptFormat
from selfrl.rewards.reward_model import TEMPLATE, load_reward_model, score_texts


def greedy(model_path: str, rows: list[dict], max_new_tokens: int, fmt: PromptFormat) -> list[dict]:
    model, tok = load_causal_lm(model_path, "cpu", "fp32"), load_tokenizer(model_path)
    _, samples = evaluate(model, tok, rows, EvalSettings(n=0, ks=(), max_new_tokens=max_new_tokens),
                          progress=True, prompt_format=fmt)
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sft", required=True)
    ap.add_argument("--ppo", required=True)
    ap.add_argument("--rm", required=True)
    ap.add_argument("--data", default="data/arith/test.jsonl")
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--output", default=None)
    ap.add_argument("--prompt-template", default=TEMPLATE.replace("{response}", ""),
                    help="the prompt the RLHF stages were trained on (default: the reward model's text "
                         "without the response, the seed's raw Question/Answer form)")
    ap.add_argument("--chat-template", action="store_true",
                    help="render --prompt-template as the user turn of the chat template instead")
    args = ap.parse_args()
    fmt = PromptFormat(template=args.prompt_template, chat=args.chat_template)
    rows = read_rows(args.data, ["question", "answer"])[: args.limit]
    rm, rm_tok = load_reward_model(args.rm)
    report: dict = {"n": len(rows)}
    outs = {}
    for name, path in (("sft", args.sft), ("ppo", args.ppo)):
        samples = greedy(path, rows, args.max_new_tokens, fmt)
        scores = score_texts(rm, rm_tok, [TEMPLATE.format(question=r["question"], response=s["greedy"])
                                          for r, s in zip(rows, samples)])
        correct = [bool(s["greedy_correct"]) for s in samples]
        outs[name] = correct
        report[name] = {"greedy_pass@1": sum(correct) / len(correct),
                        "mean_rm_score": sum(scores) / len(scores),
                        "mean_length_chars": sum(len(s["greedy"]) for s in samples) / len(samples)}
    ppo_better = sum(p and not s for p, s in zip(outs["ppo"], outs["sft"]))
    sft_better = sum(s and not p for p, s in zip(outs["ppo"], outs["sft"]))
    n = len(rows)
    report["head_to_head"] = {"ppo_preferred": ppo_better / n, "sft_preferred": sft_better / n,
                              "tie": 1 - (ppo_better + sft_better) / n}
    report["reward_hacking"] = (report["ppo"]["mean_rm_score"] > report["sft"]["mean_rm_score"]
                                and report["ppo"]["greedy_pass@1"] < report["sft"]["greedy_pass@1"])
    print(json.dumps(report, indent=2))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
