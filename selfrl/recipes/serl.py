"""SeRL: self-instruction with online filters, and majority-vote self-reward.

Each step the policy writes new problems from SeRL's few-shot prompt (8 examples: up to 2
previously trained-on generated problems, the rest seeds, shuffled), sampled at temperature
0.8, top-p 0.95, presence penalty 2.  Parsed items pass SeRL's filters in order — empty,
word count, banned words, "Write a program", leading punctuation / non-ASCII, ROUGE-L F
against the seeds and every accepted problem — then n responses per problem are sampled and
scored by majority vote (the ``majority_vote`` reward, whose pseudo-labels ride on the rollout
batch with their groups, for this recipe's records).  The online difficulty
filter keeps a problem when its mean majority reward lies within ``difficulty_bounds``; the
trainer refills until the batch is full.  Trained-on problems join the few-shot pool.

Departures from the authors' code, all deliberate:

- Problems accepted by the format filters wait in a pending queue; the trainer asks for
  exactly the number of groups still missing, so kept (difficulty-passing) problems never
  exceed the batch and the "buffer" of kept problems is the batch being filled.  Pending
  problems older than one step expire (written to the step's JSONL as ``expired``).
- A group in which no answer parses gets 0.0 everywhere (the reward's docstring says why).
- ``mode: fixed`` is the authors' variant (b): majority vote on a fixed unlabelled prompt set
  (``data.train``), difficulty bounds on, no self-instruction.

Per step, ``RUN_DIR/selfplay/step-NNNNNN.jsonl`` records every generated problem with each
filter's decision, the difficulty-filtered, expired and trained-on problems, and the
pseudo-labels.  The few-shot pool, the ROUGE pool, the pending queue and the recipe's RNG are
part of the checkpoint, so ``--resume`` continues the self-play exactly.
"""

from __future__ import annotations

import hashlib
import json
import random
from functools import partial
from typing import Literal

from pydantic import Field

from selfrl.config import StrictModel, validate_section
from selfrl.data.arith import solve_arith_text
from selfrl.eval.extract import equivalent
from selfrl.prompts import SELF_INSTRUCT_SYSTEM, parse_numbered_items, self_instruct_messages, solve_messages
from selfrl.recipes import RECIPES
from selfrl.rollout.base import SamplingParams
from selfrl.selfplay.filters import FORMAT_FILTERS, word_count
from selfrl.selfplay.rouge import RougePool
from selfrl.trainer.batch import RolloutBatch
from selfrl.trainer.recipe import Recipe, RecipeContext


class SerlArgs(StrictModel):
    """``recipe_args`` of the SeRL recipe (authors' defaults)."""

    mode: Literal["selfplay", "fixed"] = Field("selfplay", description="selfplay: write new problems; "
                                               "fixed: majority vote on data.train's prompts")
    self_instruct_system: str = Field(
        SELF_INSTRUCT_SYSTEM, description="the instruction-generation prompt's system turn: the teacher's "
                                          "brief, naming the kind of problem to write (default: math word "
                                          "problems)")
    n_fewshot: int = Field(8, ge=1, description="examples per instruction-generation prompt")
    max_generated_fewshot: int = Field(2, ge=0, description="of which at most this many are generated")
    gen_temperature: float = Field(0.8, ge=0, description="instruction sampling temperature")
    gen_top_p: float = Field(0.95, gt=0, le=1, description="instruction sampling top-p")
    gen_presence_penalty: float = Field(2.0, description="instruction sampling presence penalty")
    gen_max_new_tokens: int = Field(96, ge=1, description="tokens per instruction-generation sample")
    gen_prompts_per_round: int = Field(16, ge=1, description="instruction prompts sampled per round")
    gen_max_rounds: int = Field(8, ge=1, description="generation rounds per call before giving up")
    min_words: int = Field(4, ge=0, description="word-count filter: fewest words")
    max_words: int = Field(150, ge=1, description="word-count filter: most words")
    rouge_threshold: float = Field(0.7, gt=0, le=1, description="drop when ROUGE-L F > this")
    difficulty_bounds: tuple[float, float] = Field((0.2, 0.8), description="keep a problem when its "
                                                   "mean majority reward is within these bounds")


@RECIPES.register("serl")
class SeRL(Recipe):
    """Self-play RL from a small seed set; labels never reach the reward."""

    args_model = SerlArgs

    def __init__(self, ctx: RecipeContext) -> None:
        super().__init__(ctx)
        self.args = validate_section(SerlArgs, self.cfg.recipe_args, "recipe_args")
        # SeRL's format filters in order, the word-count bounds taken from the config.
        self.format_filters = [
            partial(word_count, low=self.args.min_words, high=self.args.max_words)
            if f is word_count else f for f in FORMAT_FILTERS]
        q = self.cfg.data.question_field
        self.seeds = [str(r[q]) for r in ctx.prompts.rows]
        self.rng = random.Random(self.cfg.train.seed + 17)
        self.rouge = RougePool(self.seeds)
        self.accepted: list[str] = []  # every problem the format and ROUGE filters accepted
        self.generated_pool: list[str] = []  # trained-on generated problems (few-shot material)
        self.pending: list[tuple[int, str]] = []  # (step accepted, problem) not yet rolled out
        self.records: list[dict] = []  # this step's JSONL records
        self.out_dir = ctx.run_dir / "selfplay"

    # --- self-instruction -------------------------------------------------------------

    def fewshot_examples(self) -> list[str]:
        """8 examples: up to 2 generated (trained-on) problems, the rest seeds, shuffled."""
        a = self.args
        n_gen = min(a.max_generated_fewshot, len(self.generated_pool), a.n_fewshot)
        examples = self.rng.sample(self.generated_pool, n_gen)
        examples += self.rng.sample(self.seeds, min(a.n_fewshot - n_gen, len(self.seeds)))
        self.rng.shuffle(examples)
        return examples

    def filter_reason(self, text: str) -> str | None:
        """SeRL's filters in order; the first reason to drop ``text``, or ``None`` to keep it."""
        a = self.args
        for f in self.format_filters:
            reason = f(text)
            if reason:
                return reason
        if self.rouge.max_score(text, a.rouge_threshold) > a.rouge_threshold:
            return "rouge_l"
        return None

    def generate_problems(self) -> list[str]:
        """One round: sample instruction prompts, parse items, filter; returns accepted problems."""
        a, tok = self.args, self.ctx.tokenizer
        system = a.self_instruct_system
        # Rendered as the run's prompts are (its chat template file and kwargs, or raw text).
        prompts = [self.ctx.prompt_format.render(tok, self_instruct_messages(self.fewshot_examples(), system))
                   for _ in range(a.gen_prompts_per_round)]
        params = SamplingParams(n=1, temperature=a.gen_temperature, top_p=a.gen_top_p,
                                presence_penalty=a.gen_presence_penalty, max_new_tokens=a.gen_max_new_tokens)
        # With several processes every rank built the same prompts (the recipe's RNG is shared),
        # samples its own share, and every rank filters the gathered texts in the same order,
        # so the pools, the pending queue and the records stay identical everywhere.
        dist = self.ctx.dist
        share = prompts[dist.rank * len(prompts) // dist.world_size:
                        (dist.rank + 1) * len(prompts) // dist.world_size]
        texts: list[str] = []
        if share:
            with self.ctx.autocast():
                groups = self.ctx.engine.generate(share, params, self.ctx.generator)
            texts = [g[0].text for g in groups]
        texts = [t for part in dist.gather_objects(texts) for t in part]
        accepted = []
        for text in texts:
            for item in parse_numbered_items(text) or [""]:
                reason = self.filter_reason(item)
                self.records.append({"kind": "generated", "problem": item, "decision": reason or "accepted"})
                if reason is None:
                    self._add_accepted(item)
                    accepted.append(item)
        return accepted

    def next_prompts(self, k: int) -> list[dict]:
        if self.args.mode == "fixed":
            return self.ctx.prompts.take(k)
        rounds = 0
        while len(self.pending) < k and rounds < self.args.gen_max_rounds:
            rounds += 1
            self.pending += [(self.ctx.step, p) for p in self.generate_problems()]
        take, self.pending = self.pending[:k], self.pending[k:]
        return [{"question": p, "prompt": solve_messages(p), "generated": True} for _, p in take]

    # --- difficulty filter, persistence -----------------------------------------------

    def keep_groups(self, batch: RolloutBatch) -> list[bool]:
        lo, hi = self.args.difficulty_bounds
        means = batch.scores.view(-1, batch.group_size).mean(dim=1)  # (G,)
        return [lo <= float(m) <= hi for m in means]

    def on_collected(self, trained: RolloutBatch, dropped: RolloutBatch) -> None:
        entries: list[dict] = []
        for kind, batch in (("trained", trained), ("filtered_difficulty", dropped)):
            # The majority_vote reward's pseudo-labels ride with their groups (None without it).
            labels = batch.group_data.get("pseudo_label", [None] * batch.num_groups)
            for g, pseudo in enumerate(labels):
                sl = slice(g * batch.group_size, (g + 1) * batch.group_size)
                row = batch.rows[g * batch.group_size]
                problem = str(row.get(self.cfg.data.question_field))
                # For analysis only (never a reward): arith problems the policy writes in the
                # task's grammar have a computable answer, so pseudo-labels can be checked.
                truth = solve_arith_text(problem)
                entries.append({
                    "kind": kind, "problem": problem, "mean_reward": float(batch.scores[sl].mean()),
                    "pseudo_label": pseudo, "generated": bool(row.get("generated", False)),
                    "true_answer": truth,
                    "pseudo_label_correct": None if truth is None or pseudo is None
                    else equivalent(pseudo, str(truth))})
        # Each process holds its own groups: every rank records all of them, in rank order.
        for entry in (e for part in self.ctx.dist.gather_objects(entries) for e in part):
            self.records.append(entry)
            if entry["kind"] == "trained" and entry["generated"]:
                self.generated_pool.append(entry["problem"])

    def on_step_end(self, step: int, batch: RolloutBatch) -> dict[str, float]:
        expired = [p for s, p in self.pending if s < step]
        self.pending = [(s, p) for s, p in self.pending if s >= step]
        self.records += [{"kind": "expired", "problem": p} for p in expired]
        counts: dict[str, int] = {}
        for r in self.records:
            key = r["kind"] if r["kind"] != "generated" else f"generated/{r['decision']}"
            counts[key] = counts.get(key, 0) + 1
        metrics = {f"selfplay/{k}": float(v) for k, v in counts.items()}
        checked = [r["pseudo_label_correct"] for r in self.records
                   if r["kind"] == "trained" and r.get("pseudo_label_correct") is not None]
        if checked:
            metrics["selfplay/pseudo_label_accuracy"] = sum(checked) / len(checked)
        metrics["selfplay/fewshot_pool"] = float(len(self.generated_pool))
        metrics["selfplay/rouge_pool"] = float(len(self.rouge))
        self._check_ranks_agree()
        if self.ctx.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / f"step-{step:06d}.jsonl", "w", encoding="utf-8") as f:
                for r in self.records:
                    f.write(json.dumps(r) + "\n")
        self.records = []
        return metrics

    def _check_ranks_agree(self) -> None:
        """With several processes, stop at once if the self-play state differs between ranks
        (it never should: a divergence would train each rank on different problems)."""
        dist = self.ctx.dist
        if not dist.enabled:
            return
        state = json.dumps([self.accepted, self.generated_pool, self.pending])
        digest = hashlib.sha256(state.encode()).hexdigest()  # str hash() differs per process
        if len(set(dist.gather_objects(digest))) > 1:
            raise RuntimeError("SeRL: the self-play state differs between processes (a bug); stopping")

    def state_dict(self) -> dict:
        return {"rng": self.rng.getstate(), "generated_pool": list(self.generated_pool),
                "accepted": list(self.accepted), "pending": list(self.pending)}

    def load_state_dict(self, state: dict) -> None:
        self.rng.setstate(state["rng"])
        self.generated_pool = list(state["generated_pool"])
        self.pending = [tuple(x) for x in state["pending"]]
        self.rouge = RougePool(self.seeds)
        self.accepted = []
        for text in state["accepted"]:
            self._add_accepted(text)

    def _add_accepted(self, text: str) -> None:
        self.rouge.add(text)
        self.accepted.append(text)
