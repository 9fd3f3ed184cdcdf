"""Data parallelism for the trainer: one process per device, launched by ``accelerate launch``
(or ``torchrun``), talking through ``torch.distributed``.

How the RL step is split (``W`` processes, ``P = train.prompts_per_step`` global prompts):

* **Rollout.** Every process reads the same prompt stream, takes the ``P`` next prompts and
  keeps its own contiguous share of ``P / W``, so whole groups stay on one process and the
  data cursor (saved by rank 0) is the same everywhere.
* **Advantages.** The estimator runs on the *global* batch (:mod:`selfrl.trainer.advantage`),
  so batch-whitened estimators see the same statistics as one process with the whole batch.
* **Update.** Every loss aggregation is a sum over sequences divided by a batch constant
  (:mod:`selfrl.algorithms.aggregation`).  Each process passes the *global* constants
  (token and sequence counts summed over processes), so the per-process losses add up to
  the one-process loss, and :meth:`DistContext.all_reduce_grads` *sums* the gradients: the
  result does not depend on ``W``.  (Plain gradient summing rather than a DDP wrapper: the
  trainer runs generation, reference and value forwards on the bare model, and a rank that
  skips a non-finite micro-batch must not leave the others waiting in a DDP hook.)  With
  ``train.sharding=fsdp`` the models are sharded instead and FSDP reduce-scatters the
  gradients, summed the same way (:mod:`selfrl.trainer.sharding`).
* **Seeds.** Rank ``r`` samples with ``train.seed + r * RANK_SEED_STRIDE`` (rank 0: the
  one-process seed); ``rollout.seed_per_group`` instead seeds each group from
  ``(train.seed, step, attempt, global group index)``, so that a run samples the same
  completions whatever the number of processes.

A single process never initialises ``torch.distributed`` and every helper is the identity,
so one-process runs behave exactly as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn

import torch

RANK_SEED_STRIDE = 1_000_003


def shard_size(global_prompts: int, world_size: int) -> int:
    """Prompts per process; ``train.prompts_per_step`` is global and must divide evenly.

    >>> shard_size(8, 2)
    4
    """
    if global_prompts % world_size:
        raise ValueError(f"train.prompts_per_step={global_prompts} is the number of prompts per step over "
                         f"all processes and must be divisible by the number of processes ({world_size}); "
                         f"use a multiple of {world_size}")
    return global_prompts // world_size


def group_seed(seed: int, step: int, attempt: int, group: int) -> int:
    """A 63-bit seed for one prompt group, the same in every process and for any world size.

    >>> group_seed(0, 1, 1, 0) == group_seed(0, 1, 1, 0) != group_seed(0, 1, 1, 1)
    True
    """
    digest = hashlib.sha256(f"{seed}:{step}:{attempt}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job; the defaults (one process) make every method a no-op."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")  # where collectives' tensors live (cuda for nccl)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, metrics and evaluates."""
        return self.rank == 0

    def rank_seed(self, seed: int) -> int:
        """A different, deterministic sampling seed per rank (rank 0 keeps ``seed``)."""
        return seed + self.rank * RANK_SEED_STRIDE

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def sum_scalar(self, x: float) -> float:
        """``x`` summed over processes (returned unchanged with one process)."""
        if not self.enabled:
            return x
        t = torch.tensor(float(x), dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return float(t)

    def sum_tensor(self, t: torch.Tensor) -> torch.Tensor:
        """A (CPU) tensor summed over processes; the same object with one process."""
        if not self.enabled:
            return t
        out = t.detach().to(self.device, torch.float64).clone()
        torch.distributed.all_reduce(out)
        return out.to(t.device, t.dtype if t.is_floating_point() else torch.float64)

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds in every process."""
        return flag if not self.enabled else self.sum_scalar(0.0 if flag else 1.0) == 0

    def max_int(self, x: int) -> int:
        """The largest ``x`` over processes (``x`` with one process)."""
        if not self.enabled:
            return x
        t = torch.tensor(int(x), dtype=torch.int64, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return int(t)

    def any_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds in some process."""
        return flag if not self.enabled else self.sum_scalar(1.0 if flag else 0.0) > 0

    def gather_objects(self, obj: object) -> list:
        """Every process's ``obj`` (picklable), in rank order."""
        if not self.enabled:
            return [obj]
        out: list = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def gather_rows(self, t: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Concatenate every process's ``(B_r, ...)`` CPU tensor along dim 0; dim 1 (if any) is
        right-padded with zeros to the longest.  Returns the result and this rank's first row."""
        if not self.enabled:
            return t, 0
        shapes = self.gather_objects(tuple(t.shape))
        width = max(s[1] for s in shapes) if t.dim() > 1 else None
        padded = t if width is None else torch.nn.functional.pad(t, (0, 0) * (t.dim() - 2)
                                                                    + (0, width - t.shape[1]))
        rows = max(s[0] for s in shapes)
        buf = torch.zeros((rows, *padded.shape[1:]), dtype=t.dtype, device=self.device)
        buf[:t.shape[0]] = padded.to(self.device)
        parts = [torch.empty_like(buf) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, buf)
        out = torch.cat([p[:s[0]] for p, s in zip(parts, shapes)]).to(t.device)
        return out, sum(s[0] for s in shapes[:self.rank])

    def mean_metrics(self, metrics: dict) -> dict:
        """Average each metric over the processes that report it (identity with one process)."""
        if not self.enabled:
            return metrics
        out: dict = {}
        gathered = self.gather_objects(metrics)
        for k in dict.fromkeys(k for m in gathered for k in m):  # a process with no rows reports fewer
            values = [float(m[k]) for m in gathered if k in m]
            out[k] = sum(values) / len(values)
        return out

    def all_reduce_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Sum the gradients over processes, in flat buckets (one all-reduce per ~64 MiB)."""
        if not self.enabled:
            return
        grads = []
        for p in params:
            if p.requires_grad:
                if p.grad is None:  # unused here but maybe not elsewhere: take part with zeros
                    p.grad = torch.zeros_like(p)
                grads.append(p.grad)
        for bucket in _buckets(grads, 16 * 2**20):
            flat = torch.cat([g.reshape(-1) for g in bucket])
            torch.distributed.all_reduce(flat)
            offset = 0
            for g in bucket:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every process (a common start)."""
        if not self.enabled:
            return
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                torch.distributed.broadcast(t.data, src=0)


def _buckets(tensors: list[torch.Tensor], max_numel: int) -> list[list[torch.Tensor]]:
    """Consecutive groups of same-dtype, same-device tensors of at most ``max_numel`` elements
    (a larger tensor gets a group of its own)."""
    out: list[list[torch.Tensor]] = []
    size = 0
    for t in tensors:
        if out and size + t.numel() <= max_numel and out[-1][0].dtype == t.dtype \
                and out[-1][0].device == t.device:
            out[-1].append(t)
            size += t.numel()
        else:
            out.append([t])
            size = t.numel()
    return out


def init_distributed(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group when launched with several processes (``WORLD_SIZE`` > 1, as set
    by ``accelerate launch`` or ``torchrun``); returns the context and this process's device
    (``cuda:LOCAL_RANK`` for a CUDA run).  One process: ``(DistContext(), device)``, untouched."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistContext(), device
    from accelerate import PartialState

    state = PartialState(cpu=device.type == "cpu")  # initialises torch.distributed (nccl / gloo)
    if device.type == "cuda":
        device = torch.device("cuda", state.local_process_index)
        torch.cuda.set_device(device)
    comm = device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")
    return DistContext(state.process_index, state.num_processes, state.local_process_index, comm), device


def shutdown_distributed() -> None:
    """Wait for every process, then tear the process group down while Python is still whole: left
    to interpreter exit, its communication threads can be destroyed out of order, and a process
    that has finished its work then aborts ("terminate called without an active exception": seen
    with gloo under FSDP, about once in a few dozen launches here).  The group's C++ objects can
    still outlive this (FSDP's device mesh holds them), so a launched process ends through
    :func:`exit_launched_process` instead of the interpreter's teardown."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def launched_with_peers() -> bool:
    """Whether this process is one of several that a launcher (torchrun, ``accelerate launch``)
    started: ``WORLD_SIZE`` above 1."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def exit_launched_process(code: int) -> NoReturn:
    """End a process of a multi-process launch with ``code``, its output flushed, without the
    interpreter's teardown.

    After the process group is destroyed, objects that still hold it (FSDP's device mesh, DTensor
    parameters) are freed in no fixed order at exit, and gloo's pair threads can be destroyed
    while joinable: the process then aborts after its work is done, and the launcher reports the
    whole run failed.  Every file this library writes is closed by then (the logger closes at the
    end of ``fit``; checkpoints are written and renamed before it returns), so skipping the
    teardown loses nothing.

    Example:
        >>> launched_with_peers()  # a plain process: the CLI returns normally
        False
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said
            pass
    logging.shutdown()
    os._exit(code)


def ensure_process_group(device: torch.device) -> None:
    """A process group, of one process when none was joined: FSDP needs one even alone (for its
    CPU offload and mixed precision on one device).  From torchrun's rendezvous when there is
    one, else on a free local port."""
    import socket

    if torch.distributed.is_initialized():
        return

    if "MASTER_ADDR" in os.environ:
        init = "env://"
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            init = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    backend = "nccl" if device.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend, init_method=init, rank=0, world_size=1)
