"""``selfrl merge --adapter PATH --output PATH``: fold a LoRA adapter into its base model.

The adapter's ``adapter_config.json`` names its base model and task: a causal LM
(``CAUSAL_LM``) or a reward model (``SEQ_CLS``, a one-output sequence classifier).  The base
is loaded, the adapter applied, merged and unloaded; the plain model and the tokenizer are
saved, ready for ``from_pretrained`` without PEFT.

Example::

    merge_adapter("runs/sft/model", "runs/sft/merged")
"""

from __future__ import annotations

import json
from pathlib import Path

from selfrl.models import ModelNotFoundError, load_tokenizer, resolve_model_path


def adapter_base(adapter: str | Path) -> tuple[str, str]:
    """The adapter's base model path (resolved) and its PEFT task type."""
    config_path = Path(adapter) / "adapter_config.json"
    if not config_path.is_file():
        raise ModelNotFoundError(f"{adapter}: not a LoRA adapter (no adapter_config.json)")
    config = json.loads(config_path.read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ModelNotFoundError(f"{config_path}: names no base model (base_model_name_or_path)")
    try:
        resolved = resolve_model_path(base)
    except ModelNotFoundError as e:
        raise ModelNotFoundError(f"{adapter}: its base model was not found: {e}") from None
    return resolved, config.get("task_type") or "CAUSAL_LM"


def merge_adapter(adapter: str | Path, output: str | Path) -> Path:
    """Merge ``adapter`` into its base model and save model + tokenizer to ``output``."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    base_path, task = adapter_base(adapter)
    auto = AutoModelForSequenceClassification if task == "SEQ_CLS" else AutoModelForCausalLM
    extra = {"num_labels": 1} if task == "SEQ_CLS" else {}
    try:
        base = auto.from_pretrained(base_path, dtype=torch.float32, **extra)
    except OSError as e:
        raise ModelNotFoundError(f"{adapter}: could not load its base model {base_path!r}: {e}") from None
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    output = Path(output)
    merged.save_pretrained(output)
    if (Path(adapter) / "tokenizer_config.json").is_file():  # the trainer saved one beside the adapter
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(output)
    else:
        load_tokenizer(base_path).save_pretrained(output)
    return output
