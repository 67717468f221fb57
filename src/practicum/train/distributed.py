"""Several processes, one training run: torch.distributed set-up from torchrun's environment,
rank helpers, metric all-reduce, DDP/FSDP wrapping and the torchrun launcher.

A process started by torchrun sees WORLD_SIZE, RANK and LOCAL_RANK; `setup()` joins the process
group (gloo on CPU, nccl on CUDA). Without those variables everything here is a no-op for one
process, so the single-process path is untouched.

Global batch semantics: train.batch_size x train.grad_accum rows make one optimizer step
whatever the number of processes N; each micro-batch is split into N contiguous shards
(`shard`), and a rank's loss is its sum over rows / rows in the group x N, because DDP averages
gradients over ranks. The summed gradient then equals the single-process one.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from practicum.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: rank of world, and the GPU index on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def env_world() -> Dist:
    """What torchrun's environment variables say (one process when they are absent)."""
    return Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))


def setup(device: str = "auto") -> Dist:
    """Join the process group when started by torchrun with WORLD_SIZE > 1 (idempotent)."""
    d = env_world()
    if not d.active:
        return d
    import torch.distributed as dist

    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and not device.startswith(("cpu", "mps"))
        if use_cuda:
            torch.cuda.set_device(d.local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", store=_store(d),
                                rank=d.rank, world_size=d.world)
        log.info("process group: rank %d of %d (%s)", d.rank, d.world, dist.get_backend())
    return Dist(dist.get_rank(), dist.get_world_size(), d.local_rank)


def _store(d: Dist) -> Any:
    """torchrun's TCP store under a prefix of its own per elastic restart, so a restarted group
    never reads the addresses a killed one left there (gloo then fails to connect)."""
    from datetime import timedelta

    import torch.distributed as dist

    if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        raise UserError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set; launch with torchrun "
                        "(or `practicum train RECIPE --nproc N`)")
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), d.world,
                          is_master=not agent and d.rank == 0, timeout=timedelta(minutes=30),
                          multi_tenant=True)
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"practicum/attempt_{restart}", store)


def current() -> Dist:
    """The initialised group's rank and size, or one process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), env_world().local_rank)
    return Dist()


def is_main() -> bool:
    return current().main


def barrier() -> None:
    if current().active:
        import torch.distributed as dist

        dist.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (writing caches: tokenizer, corpus), then the others (reading them)."""
    d = current()
    if d.active and not d.main:
        barrier()
    yield
    if d.active and d.main:
        barrier()


def broadcast(value: Any) -> Any:
    """Rank 0's `value` on every rank (a plain picklable Python object)."""
    if not current().active:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(value: float) -> float:
    """The sum of a float over ranks (float64, so a logged loss is the exact global mean)."""
    if not current().active:
        return value
    import torch.distributed as dist

    on_gpu = dist.get_backend() == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else torch.device("cpu")
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_elastic_restart() -> bool:
    """True in a worker group torchrun restarted after a failure (--max-restarts)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0


def check_batch(batch_size: int, world: int) -> None:
    """The global micro-batch must split evenly across processes."""
    if world > 1 and batch_size % world:
        fits = [b for b in (batch_size - batch_size % world, batch_size + world - batch_size % world) if b > 0]
        raise UserError(
            f"train.batch_size {batch_size} (the global micro-batch) does not split across {world} "
            f"processes; use a multiple of {world}, e.g. --train.batch_size {fits[-1]}"
        )


def shard(batch: dict[str, torch.Tensor], d: Dist) -> dict[str, torch.Tensor]:
    """Rank r's contiguous share of a global micro-batch (rows split as evenly as possible)."""
    if not d.active:
        return batch
    return {k: torch.tensor_split(v, d.world)[d.rank] for k, v in batch.items()}


def wrap(model: nn.Module, strategy: str, device: torch.device) -> nn.Module:
    """The module the training forward runs through: DDP, or FSDP when asked."""
    if strategy == "fsdp":
        return _fsdp(model, device)
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _fsdp(model: nn.Module, device: torch.device) -> nn.Module:
    """FSDP2 (fully_shard, in place) over the model's repeated blocks (the items of its
    ModuleLists: Transformer layers), or its top-level children where it has none, then the
    whole model, whose own unit keeps the rest (embeddings and a head tied to them stay together).
    gloo on CPU works in torch 2.13; nccl on CUDA."""
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError as exc:  # older torch
        raise UserError("train.strategy fsdp needs torch >= 2.6 (fully_shard); use --strategy ddp") from exc
    blocks = [item for m in model.modules() if isinstance(m, nn.ModuleList) for item in m]
    units = blocks or [c for c in model.children() if not isinstance(c, nn.ModuleDict)]
    for unit in units:
        if any(p.requires_grad for p in unit.parameters()):
            fully_shard(unit)
    fully_shard(model)
    return model


def no_sync(net: nn.Module, sync: bool) -> AbstractContextManager[Any]:
    """Skip the gradient all-reduce (DDP) or reduce-scatter (FSDP) on all but the last
    micro-batch of an accumulation group."""
    if sync:
        return nullcontext()
    if hasattr(net, "set_requires_gradient_sync"):
        return _fsdp_no_sync(net)
    return net.no_sync() if hasattr(net, "no_sync") else nullcontext()


@contextmanager
def _fsdp_no_sync(net: Any) -> Iterator[None]:
    net.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        net.set_requires_gradient_sync(True)


# ---------------------------------------------------------------- whole state of a sharded model


def _full() -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def model_state(model: nn.Module, fsdp: bool) -> dict[str, torch.Tensor]:
    """Unsharded weights, no wrapper prefixes; under FSDP a collective (rank 0 gets them, others {})."""
    if not fsdp:
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full())


def optimizer_state(model: nn.Module, optimizer: Any, fsdp: bool) -> dict[str, Any]:
    """The optimizer's state; under FSDP the full one keyed by parameter name (a collective)."""
    if not fsdp:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return {**get_optimizer_state_dict(model, optimizer, options=_full()), "by_name": True}


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], fsdp: bool) -> None:
    if not fsdp:
        model.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def load_optimizer_state(model: nn.Module, optimizer: Any, state: dict[str, Any], fsdp: bool) -> None:
    """Either layout into either strategy, except a DDP/1-process one into FSDP."""
    state = dict(state)
    by_name = bool(state.pop("by_name", False))
    if not by_name and not fsdp:
        optimizer.load_state_dict(state)
        return
    if not by_name:
        raise UserError("this checkpoint was written without FSDP; resume it with --strategy ddp")
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


# ---------------------------------------------------------------- the launcher


def torchrun_command(cli_args: list[str], nproc: int, nnodes: int = 1, node_rank: int = 0,
                     rdzv_endpoint: str | None = None, max_restarts: int = 0) -> list[str]:
    """`python -m torch.distributed.run ... -m practicum.cli CLI_ARGS` for this launch."""
    if nproc < 1 or nnodes < 1:
        raise UserError("--nproc and --nnodes must be at least 1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc)]
    if nnodes > 1:
        if not rdzv_endpoint:
            raise UserError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the same on every node)")
        cmd += ["--nnodes", str(nnodes), "--node-rank", str(node_rank),
                "--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint]
    elif rdzv_endpoint:
        cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint]
    else:
        cmd += ["--standalone"]
    if max_restarts:
        cmd += ["--max-restarts", str(max_restarts)]
    return [*cmd, "-m", "practicum.cli", *cli_args]


def launch(cmd: list[str]) -> int:
    """Run torchrun in the foreground and return its exit code."""
    import subprocess

    log.info("launching: %s", " ".join(cmd))
    env = {**os.environ}
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.call(cmd, env=env)
