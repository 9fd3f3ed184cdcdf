"""A trainer model's full weights, as an engine that keeps its own copy (vLLM) loads them.

:func:`full_weights` yields ``(name, tensor)`` in the base model's Hugging Face names, a LoRA
model's adapters merged into the weights they adapt (``W + ΔW``, computed out of place), and a
sharded (FSDP2) model's weights gathered one FSDP unit (a decoder layer, then the root) at a
time, so that no process ever holds a second full copy of the model.  Every process of a
sharded model must iterate it to the end, in step (each unit's gather is a collective).

>>> import torch
>>> m = torch.nn.Linear(2, 1)
>>> [name for name, _ in full_weights(m)]
['weight', 'bias']
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn


def full_weights(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """The weights of ``model`` (state-dict names of its base model), unit by unit when sharded.

    Tensors of an unsharded model are its own (no copy: read them before the weights change);
    those of a sharded one are copies, since a unit's gathered storage is freed before the next
    unit is gathered.
    """
    base = model.get_base_model() if hasattr(model, "peft_config") else model
    names = list(base.state_dict().keys())
    units = _units(model, base)
    owner = {name: _owner(name, units) for name in names}
    for prefix, unit in units:
        owned = [n for n in names if owner[n] == prefix]
        if unit is not None:
            unit.unshard()
        try:
            for name in owned:
                if ".lora_" in name:
                    continue
                t = _merged(base, name).detach()
                yield name.replace(".base_layer", ""), (t.clone() if unit is not None else t)
        finally:
            if unit is not None:
                unit.reshard()


def is_sharded(module: nn.Module | None) -> bool:
    """Whether ``module`` is sharded with FSDP2 (``fully_shard``)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def _units(model: nn.Module, base: nn.Module) -> list[tuple[str, nn.Module | None]]:
    """``(prefix in base's names, unit)`` of each FSDP unit, innermost first, the root (prefix
    ``""``) last; ``[("", None)]`` for an unsharded model."""
    from torch.distributed.fsdp import FSDPModule

    if not is_sharded(model):
        return [("", None)]
    inner = [(name, m) for name, m in base.named_modules() if isinstance(m, FSDPModule) and m is not model
             and name]
    return inner + [("", model)]


def _owner(name: str, units: list[tuple[str, nn.Module | None]]) -> str:
    """The prefix of the unit whose parameters include ``name``: the longest matching one."""
    return max((p for p, _ in units if not p or name.startswith(p + ".")), key=len)


def _merged(base: nn.Module, name: str) -> torch.Tensor:
    """The current value of ``name`` in ``base``, with the LoRA delta of its layer added when
    ``name`` is a wrapped layer's ``base_layer.weight`` (and the adapter is not merged already)."""
    module_name, _, attr = name.rpartition(".")
    module = base.get_submodule(module_name)
    t = getattr(module, attr)
    if module_name.endswith(".base_layer") and attr == "weight":
        layer = base.get_submodule(module_name.removesuffix(".base_layer"))
        adapters = [a for a in getattr(layer, "active_adapters", []) if a in getattr(layer, "lora_A", {})]
        if adapters and not layer.merged:
            t = t + sum(layer.get_delta_weight(a) for a in adapters).to(t.dtype)
    return t
