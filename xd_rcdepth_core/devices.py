"""Where and in what precision a model runs: 'auto' | 'cpu' | 'cuda' | 'cuda:N', and fp32 / fp16 / bf16."""
from __future__ import annotations

import torch

PRECISIONS = ('fp32', 'fp16', 'bf16')


def resolve_device(device: str = 'auto') -> torch.device:
    """'auto' = the first CUDA device when torch sees one, else the CPU; 'cpu'; 'cuda' or 'cuda:N'."""
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


def check_precision(device: torch.device, precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision '{precision}' is not supported: use {', '.join(PRECISIONS)}")
    if precision == 'fp16' and device.type != 'cuda':
        raise ValueError('precision fp16 needs a CUDA device; use fp32 (or bf16) on the CPU')
