"""Where and in what precision a model runs: 'auto' | 'cpu' | 'cuda' | 'cuda:N', and fp32 / fp16 / bf16.

torch is imported only where a CUDA device has to be looked up: a node serving an ONNX file on the
CPU decides its device without it (host_device), so it never pays torch's ~0.5 GB for that.
"""
from __future__ import annotations

import glob
import os

PRECISIONS = ('fp32', 'fp16', 'bf16')


def device_type(device) -> str:
    """'cpu' or 'cuda' of a torch.device or a device string such as 'cuda:1'."""
    return getattr(device, 'type', None) or str(device).split(':')[0]


def device_index(device) -> int | None:
    """N of 'cuda:N' (a torch.device or a string); None when not given."""
    index = getattr(device, 'index', None)
    if index is None and ':' in str(device):
        index = int(str(device).split(':')[1])
    return index


def gpu_driver_present() -> bool:
    """An NVIDIA (or ROCm) kernel driver is loaded: without one torch.cuda.is_available() is False."""
    return (os.path.exists('/proc/driver/nvidia/version') or os.path.exists('/dev/kfd')
            or bool(glob.glob('/dev/nvidia[0-9]*')))


def host_device(device: str) -> str | None:
    """'cpu' when ``device`` means the CPU without asking torch ('cpu', or 'auto' on a computer with no
    GPU driver); None when only torch can tell (resolve_device)."""
    if device == 'cpu' or (device == 'auto' and not gpu_driver_present()):
        return 'cpu'
    return None


def resolve_device(device: str = 'auto'):
    """The torch.device: 'auto' = the first CUDA device when torch sees one, else the CPU; 'cpu';
    'cuda' or 'cuda:N'."""
    import torch
    if device == 'auto':
        return torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device '{device}' is not valid: use auto, cpu, cuda or cuda:N") from exc
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f"device '{device}' asked for but torch sees no CUDA GPU: use device auto or cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device '{device}' does not exist: torch sees {torch.cuda.device_count()} GPU(s)")
    elif dev.type != 'cpu':
        raise ValueError(f"device '{device}' is not supported: use auto, cpu, cuda or cuda:N")
    return dev


def check_precision(device, precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision '{precision}' is not supported: use {', '.join(PRECISIONS)}")
    if precision == 'fp16' and device_type(device) != 'cuda':
        raise ValueError('precision fp16 needs a CUDA device; use fp32 (or bf16) on the CPU')
