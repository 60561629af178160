"""AdamW with the references' parameter groups and polynomial learning-rate decay.

- Weight decay on every parameter except those of the top-level `decoder` module (CaFNet: the BTS
  decoder; the student and LiRCDepth: their decoders), docs/reference.md 4.1 / 4.3.
- lr(step) = (lr0 - lr_end) (1 - step / total)^0.9 + lr_end, lr_end = 0.1 lr0 (docs/reference.md 4.1).
  The schedule is a pure function of the step, so a resumed run has the same LR at the same step.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .config import OptimSection


def freeze_encoder_stem_and_bn(model: nn.Module) -> int:
    """CaFNet's set_misc: in modules whose name contains 'encoder', the backbone's first conv and all
    BatchNorm parameters stop training (running statistics still update). Returns how many tensors."""
    frozen = 0
    for name, module in model.named_modules():
        if 'encoder' not in name:
            continue
        if isinstance(module, nn.modules.batchnorm._BatchNorm) or name.endswith('backbone.conv1'):
            for p in module.parameters(recurse=False):
                p.requires_grad_(False)
                frozen += 1
    return frozen


def parameter_groups(model: nn.Module, config: OptimSection) -> list:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name.split('.')[0] == 'decoder' else decay).append(p)
    groups = [{'params': decay, 'weight_decay': config.weight_decay, 'name': 'encoders'},
              {'params': no_decay, 'weight_decay': config.decoder_weight_decay, 'name': 'decoder'}]
    return [g for g in groups if g['params']]


def build_optimizer(model: nn.Module, config: OptimSection) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameter_groups(model, config), lr=config.lr, eps=config.eps)


class PolySchedule:
    """lr of a step in [0, total): (lr0 - lr_end) (1 - step / total)^power + lr_end."""

    def __init__(self, base_lr: float, total_steps: int, end_ratio: float = 0.1, power: float = 0.9):
        if total_steps < 1:
            raise ValueError(f'the schedule needs at least one step, got {total_steps}')
        self.base_lr, self.total_steps = float(base_lr), int(total_steps)
        self.end_lr, self.power = float(base_lr) * end_ratio, float(power)

    def lr(self, step: int) -> float:
        frac = min(max(step, 0), self.total_steps) / self.total_steps
        return (self.base_lr - self.end_lr) * (1.0 - frac) ** self.power + self.end_lr

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        lr = self.lr(step)
        for group in optimizer.param_groups:
            group['lr'] = lr
        return lr

    def state_dict(self) -> dict:
        return {'kind': 'poly', 'base_lr': self.base_lr, 'end_lr': self.end_lr, 'power': self.power,
                'total_steps': self.total_steps}
