"""Sharded training with FSDP2 (``torch.distributed.fsdp.fully_shard``): ``train.sharding=fsdp``.

With ``W`` processes, what the trainer does differently from data parallelism, and why:

* **What is sharded.** The policy, the reference model and the critic: each decoder layer is an
  FSDP unit and the root (embeddings, final norm, output layer; the critic's value head) another,
  so a process keeps ``1/W`` of every parameter, gradient and AdamW moment, and gathers one layer
  at a time in forward and backward.  With ``model.dtype`` bf16/fp16 the fp32 shards are gathered
  in that dtype and gradients reduced in fp32 (FSDP's ``MixedPrecisionPolicy``);
  ``train.cpu_offload`` keeps the shards in CPU memory and steps the optimizer there.
* **Gradients are summed** over processes (divide factor 1), as data parallelism sums them
  (:mod:`selfrl.trainer.distributed`): losses are normalised by global counts, so the update
  equals one process's with the whole batch.
* **Every process runs the same number of forward and backward passes**, since each one gathers
  and reduce-scatters with the others: the trainer pads a process's micro-batches with idle ones
  (a one-token sequence whose loss is multiplied by zero) up to the largest count.
* **Rollouts and evaluation run on gathered weights** (:func:`gathered`): every unit is gathered
  once and kept until sampling ends.  Decoding through the sharded model would gather every layer
  for every token (TRL gathers ZeRO-3 weights for generation for the same reason), and the
  processes could not sample different amounts (evaluation runs on rank 0 alone).  It costs one
  full copy of the weights in the compute dtype per device while sampling (``selfrl plan`` counts
  it); the vLLM engine samples from its own copy instead and is refreshed one unit at a time
  (:func:`selfrl.rollout.weights.full_weights`).
* **The chunked output layer** (:mod:`selfrl.trainer.lm_head`) reads the output layer's weight
  outside the model's ``forward``; :func:`in_forward` runs it inside the root's FSDP hooks, so
  the weight is gathered and its gradient reduced as in ``forward``.
* **Checkpoints**: :func:`save_shards` / :func:`load_shards` (``torch.distributed.checkpoint``:
  every rank writes its own shards) and :func:`export_hf` (the full weights gathered on rank 0,
  written as a Hugging Face folder).

Only ``torch`` is imported at module level (the GPU benchmark imports this module alone).

>>> settings_from_launch("fsdp", cpu_offload=False, env={})
ShardingSettings(fsdp=True, cpu_offload=False, gradient_checkpointing=False)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from selfrl.rollout.weights import is_sharded

SHARDS = "shards"  # a sharded checkpoint's torch.distributed.checkpoint folder
FORWARD_METHOD = "selfrl_in_forward"  # the root's extra FSDP forward method (see in_forward)


class ShardingError(ValueError):
    """A launch or resume that cannot work with the chosen sharding (printed as one line)."""


@dataclass(frozen=True)
class ShardingSettings:
    """How the trainer shards its models: ``fsdp`` on or off, and its options."""

    fsdp: bool = False
    cpu_offload: bool = False
    gradient_checkpointing: bool = False  # asked for by accelerate's FSDP_ACTIVATION_CHECKPOINTING


def settings_from_launch(sharding: str, cpu_offload: bool, env: Mapping[str, str]) -> ShardingSettings:
    """``train.sharding`` / ``train.cpu_offload`` combined with what ``accelerate launch`` was given
    (its FSDP config turns sharding on; its offload and activation-checkpointing flags are kept).
    A DeepSpeed config is refused with a pointer to FSDP.

    >>> settings_from_launch("none", False, {"ACCELERATE_USE_FSDP": "true",
    ...                                      "FSDP_OFFLOAD_PARAMS": "true"})
    ShardingSettings(fsdp=True, cpu_offload=True, gradient_checkpointing=False)
    >>> try:
    ...     settings_from_launch("none", False, {"ACCELERATE_USE_DEEPSPEED": "true"})
    ... except ValueError as e:
    ...     print(str(e).split(":")[0])
    the accelerate config asks for DeepSpeed, which selfrl does not use
    """

    def flag(key: str) -> bool:
        return env.get(key, "false").strip().lower() == "true"

    if flag("ACCELERATE_USE_DEEPSPEED"):
        raise ShardingError("the accelerate config asks for DeepSpeed, which selfrl does not use: it shards "
                         "with FSDP2 instead. Launch with an FSDP config (accelerate launch --use_fsdp ...) "
                         "or with --multi_gpu and train.sharding=fsdp")
    if not flag("ACCELERATE_USE_FSDP"):
        return ShardingSettings(sharding == "fsdp", cpu_offload)
    return ShardingSettings(True, cpu_offload or flag("FSDP_OFFLOAD_PARAMS"),
                            flag("FSDP_ACTIVATION_CHECKPOINTING"))


# --- sharding a model ---------------------------------------------------------------------


def decoder_layers(module: nn.Module) -> list[nn.Module]:
    """The modules of ``module`` that Hugging Face names as its unsplittable blocks
    (``_no_split_modules``: the decoder layers), outermost only."""
    names: set[str] = set()
    for m in module.modules():
        names.update(getattr(m, "_no_split_modules", None) or [])
    layers: list[tuple[str, nn.Module]] = []
    for name, m in module.named_modules():
        if type(m).__name__ in names and not any(name.startswith(p + ".") for p, _ in layers):
            layers.append((name, m))
    if not layers:
        raise ValueError(f"{type(module).__name__}: no decoder layers to shard (none of its modules is named "
                         f"in a _no_split_modules list); train.sharding=fsdp needs a transformers model")
    return [m for _, m in layers]


def shard(module: nn.Module, device: torch.device, compute_dtype: torch.dtype = torch.float32,
          cpu_offload: bool = False, frozen: bool = False) -> nn.Module:
    """Shard ``module`` in place over the default process group: each decoder layer, then the root.
    ``compute_dtype`` other than fp32: gathered in it, gradients reduced in fp32.  ``frozen`` (the
    reference model): the root is resharded after forward too (no backward will)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import (
        CPUOffloadPolicy,
        MixedPrecisionPolicy,
        OffloadPolicy,
        fully_shard,
        register_fsdp_forward_method,
    )

    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    mp = MixedPrecisionPolicy() if compute_dtype == torch.float32 else \
        MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    offload = CPUOffloadPolicy(pin_memory=device.type == "cuda") if cpu_offload else OffloadPolicy()
    for layer in decoder_layers(module):
        fully_shard(layer, mesh=mesh, mp_policy=mp, offload_policy=offload)
    fully_shard(module, mesh=mesh, mp_policy=mp, offload_policy=offload)
    gloo = torch.distributed.get_backend() == "gloo"
    for unit in fsdp_units(module):
        _sum_gradients(unit, gloo)
    if frozen:
        module.set_reshard_after_forward(True, recurse=False)
    setattr(module, FORWARD_METHOD, _call)
    register_fsdp_forward_method(module, FORWARD_METHOD)
    return module


def _sum_gradients(unit: nn.Module, gloo: bool) -> None:
    """Reduce-scatter sums instead of averaging (the losses carry global normalisers)."""
    set_factor = getattr(unit, "set_gradient_divide_factor", None) or unit.set_reduce_scatter_divide_factor
    set_factor(1.0)
    if gloo:  # gloo has no pre-multiplied sum, which FSDP would use for a custom factor
        unit.set_force_sum_reduction_for_comms(True)


def _call(fn: Callable[[], Any]) -> Any:
    return fn()


def fsdp_units(module: nn.Module) -> list[nn.Module]:
    """The FSDP units of ``module``, the root first (``[]`` when it is not sharded)."""
    from torch.distributed.fsdp import FSDPModule

    return [m for m in module.modules() if isinstance(m, FSDPModule)]


def in_forward(module: nn.Module, fn: Callable[[], Any]) -> Any:
    """``fn()``, run inside ``module``'s FSDP forward hooks when it is sharded: the root's own
    parameters (embeddings, output layer) are gathered for it and their gradients reduce-scattered
    in backward.  For code that uses those parameters outside ``module.forward`` (the chunked
    output layer); for an unsharded module, just ``fn()``."""
    run = getattr(module, FORWARD_METHOD, None) if is_sharded(module) else None
    return run(fn) if run is not None else fn()


@contextlib.contextmanager
def gathered(module: nn.Module) -> Iterator[None]:
    """Gather every unit of a sharded ``module`` and keep the full weights until the block ends
    (sampling and evaluation); every process must enter it.  No-op when not sharded."""
    units = fsdp_units(module)
    for unit in units:
        unit.set_reshard_after_forward(False, recurse=False)
    for unit in units:
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()
        for unit in units:  # FSDP's defaults: the root stays gathered from forward to backward
            unit.set_reshard_after_forward(unit is not module, recurse=False)


def full_value(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's full value (a collective); any other tensor as it is."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def local_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes this process holds of ``tensors`` (a DTensor counts its local shard only).

    >>> local_bytes([torch.zeros(3), torch.zeros(2, dtype=torch.float64)])
    28
    """
    from torch.distributed.tensor import DTensor

    total = 0
    for t in tensors:
        local = t.to_local() if isinstance(t, DTensor) else t
        total += local.numel() * local.element_size()
    return total


def train_state_bytes(params: list[torch.nn.Parameter],
                      optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """This process's bytes of ``params``, their gradients and ``optimizer``'s state (the moments;
    the step counters are scalars).

    >>> p = torch.nn.Parameter(torch.zeros(4))
    >>> p.grad = torch.zeros(4)
    >>> opt = torch.optim.AdamW([p]); opt.step()
    >>> train_state_bytes([p], opt)
    {'params': 16, 'grads': 16, 'optimizer': 32}
    """
    moments = [v for s in optimizer.state.values() for v in s.values()
               if isinstance(v, torch.Tensor) and v.dim() > 0]
    grads = [p.grad for p in params if p.grad is not None]
    return {"params": local_bytes(params), "grads": local_bytes(grads), "optimizer": local_bytes(moments)}


# --- checkpoints --------------------------------------------------------------------------


def _state_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    # Frozen parameters (a LoRA model's base) never change: they come from model.path.
    return StateDictOptions(ignore_frozen_params=True)


def save_shards(folder: Path, parts: Mapping[str, tuple[nn.Module, torch.optim.Optimizer]]) -> None:
    """Write each ``name: (module, optimizer)`` sharded into ``folder`` (every rank writes its own
    shards; rank 0 the metadata).  Every process must call it."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    state: dict[str, Any] = {}
    for name, (module, optimizer) in parts.items():
        state[name], state[f"{name}_optimizer"] = get_state_dict(module, optimizer, options=_state_options())
    dcp.save(state, checkpoint_id=str(folder))


def load_shards(folder: Path, parts: Mapping[str, tuple[nn.Module, torch.optim.Optimizer]]) -> None:
    """Load what :func:`save_shards` wrote into the modules and optimizers, in place (resharded
    if the number of processes changed).  Every process must call it."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    state: dict[str, Any] = {}
    for name, (module, optimizer) in parts.items():
        state[name], state[f"{name}_optimizer"] = get_state_dict(module, optimizer, options=_state_options())
    dcp.load(state, checkpoint_id=str(folder))
    for name, (module, optimizer) in parts.items():
        set_state_dict(module, optimizer, model_state_dict=state[name],
                       optim_state_dict=state[f"{name}_optimizer"], options=_state_options())


def load_shards_unsharded(folder: Path, name: str, module: nn.Module) -> None:
    """Load the trained parameters of part ``name`` from a sharded checkpoint into an unsharded
    ``module`` in one process (no process group; the optimizer state is not read)."""
    import warnings

    import torch.distributed.checkpoint as dcp

    state = {n: p.detach() for n, p in module.named_parameters() if p.requires_grad}
    with warnings.catch_warnings():  # "torch.distributed is disabled": one process reads every shard
        warnings.simplefilter("ignore", UserWarning)
        dcp.load({name: state}, checkpoint_id=str(folder))


def export_hf(module: nn.Module, folder: Path, tokenizer, is_main: bool) -> None:
    """Write a sharded ``module`` as a Hugging Face folder on rank 0 (``from_pretrained``-loadable;
    a LoRA model: its adapter).  The weights are gathered onto rank 0's CPU; every process must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if hasattr(module, "peft_config"):  # the adapter only: the base is model.path
        state = {n: full_value(p.detach()).cpu() for n, p in module.named_parameters() if p.requires_grad}
    else:
        state = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        # The gathered copies of tied weights (lm_head = embed_tokens) are separate tensors, which
        # save_pretrained would write twice: keep the first name, as it does for the live model.
        first = {n for n, _ in module.named_parameters()}
        for name, _ in module.named_parameters(remove_duplicate=False):
            if name not in first:
                state.pop(name, None)
    if is_main:
        module.save_pretrained(folder, state_dict=state)
        tokenizer.save_pretrained(folder)
