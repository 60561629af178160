"""Training checkpoints: weights + model config (models.checkpoint) + everything a resume needs.

Extra keys (all tensors and plain containers, so ``torch.load(weights_only=True)`` reads them and a
malicious pickle in a checkpoint never executes): optimizer, scaler, scheduler, step, rng (CPU and
CUDA generator states), best (the best val value so far), plateau (early stopping), train (recipe and
the resolved config), val (the last val metrics). Files are written atomically by save_checkpoint.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..models.checkpoint import read_checkpoint, save_checkpoint

TRAINING_KEYS = ('optimizer', 'step', 'train')


def rng_state() -> dict:
    state = {'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def save_training_state(path, model, optimizer, scaler, schedule, step: int, best: dict, config: dict,
                        val: dict | None = None, plateau: dict | None = None, inputs: dict | None = None) -> Path:
    extra = {'optimizer': optimizer.state_dict(), 'scheduler': {**schedule.state_dict(), 'step': step},
             'step': int(step), 'rng': rng_state(), 'best': best, 'plateau': plateau or {},
             'train': {'recipe': config['recipe'], 'config': config}, 'val': val}
    if inputs is not None:
        extra['inputs'] = inputs
    if scaler is not None and scaler.is_enabled():
        extra['scaler'] = scaler.state_dict()
    return save_checkpoint(path, model, extra=extra)


def read_training_state(path, map_location='cpu') -> dict:
    """A checkpoint written by the trainer (not only weights), validated."""
    ckpt = read_checkpoint(path, map_location)
    missing = [k for k in TRAINING_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f'{path} holds weights only (no {", ".join(missing)}): it cannot resume a run; '
                         f'use model.init={path} to start from its weights')
    return ckpt


def check_resumable(ckpt: dict, config: dict, path) -> list:
    """Raise when the checkpoint is of another recipe or model; return the other settings that differ."""
    saved = ckpt['train']['config']
    if ckpt['train']['recipe'] != config['recipe']:
        raise ValueError(f'{path} is a {ckpt["train"]["recipe"]!r} run; cannot resume it as recipe '
                         f'{config["recipe"]!r}')
    if ckpt['model_name'] != config['model']['name']:
        raise ValueError(f'{path} holds a {ckpt["model_name"]!r} model; this run trains {config["model"]["name"]!r}')
    changed = []
    for section in ('model', 'loss', 'distill', 'optim', 'data'):
        for key, value in config[section].items():
            if saved.get(section, {}).get(key) != value:
                changed.append(f'{section}.{key}')
    for key in ('epochs', 'max_steps', 'seed'):
        if saved.get(key) != config[key]:
            changed.append(key)
    if 'model.config' in changed:
        raise ValueError(f'{path} was trained with model.config {saved["model"]["config"]}, this run sets '
                         f'{config["model"]["config"]}: not the same network')
    return changed
