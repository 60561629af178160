"""torchrun / DistributedDataParallel plumbing: one process per device, NCCL on GPUs, gloo on CPUs.

Under ``torchrun --nproc_per_node N`` the environment carries RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; without them training runs as a single process.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..devices import resolve_device


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device_type: str = 'cpu') -> 'DistContext':
        world = int(os.environ.get('WORLD_SIZE', '1'))
        if world <= 1:
            return cls()
        rank, local = int(os.environ['RANK']), int(os.environ.get('LOCAL_RANK', '0'))
        here = False
        if not dist.is_initialized():
            backend = 'nccl' if device_type == 'cuda' else 'gloo'
            if device_type == 'cuda':
                torch.cuda.set_device(local)
            dist.init_process_group(backend=backend, rank=rank, world_size=world)
            here = True
        if device_type == 'cpu':
            # Share the cores between the processes of this machine instead of oversubscribing them.
            local_world = int(os.environ.get('LOCAL_WORLD_SIZE', world))
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
        return cls(rank, world, local, here)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def gather_objects(self, obj) -> list:
        """Every rank's `obj`, concatenated when they are lists, in rank order (on every rank)."""
        if not self.enabled:
            return list(obj)
        parts = [None] * self.world_size
        dist.all_gather_object(parts, obj)
        return [x for part in parts for x in part]

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's BatchNorm statistics everywhere (each rank updated them with its own batches)."""
        if self.enabled:
            for buf in module.buffers():
                dist.broadcast(buf, src=0)

    def replica_checksums(self, module: torch.nn.Module) -> list:
        """SHA-256 of the parameters' bytes, one per rank (equal when the replicas agree bit for bit)."""
        return self.gather_objects([parameter_digest(module)])

    def close(self) -> None:
        if self.initialised_here and dist.is_initialized():
            # Every rank reaches this point before any tears gloo down: a rank that destroyed the group
            # while its peer still used a connection aborted the peer ('terminate called without an
            # active exception') in about one run in six.
            dist.barrier()
            dist.destroy_process_group()


def parameter_digest(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, p in module.named_parameters():
        digest.update(name.encode())
        digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def device_for(config_device: str, ctx_env_world: int | None = None) -> torch.device:
    """The device of this process: cuda:LOCAL_RANK under torchrun with GPUs, else the configured one."""
    world = int(os.environ.get('WORLD_SIZE', '1')) if ctx_env_world is None else ctx_env_world
    device = resolve_device(config_device)
    if world > 1 and device.type == 'cuda':
        return torch.device('cuda', int(os.environ.get('LOCAL_RANK', '0')))
    return device
