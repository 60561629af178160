"""Our checkpoints on disk: save, read (validated), load into a rebuilt model, export for deployment.

Everything is read with ``torch.load(..., weights_only=True)``: a file can only hold tensors and
plain containers, so loading a foreign or malicious pickle never runs its code.

Checkpoint layout (a plain dict; training may add keys such as optimizer, scheduler, step):
    format 'xd_rcdepth.checkpoint', version 1, model_name, model_config (plain dict),
    state_dict, optionally inputs (the training camera and input conventions, conventions.py),
    plus whatever ``extra`` held.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from .files import atomic_save, safe_load
from .registry import build_model, config_to_dict

CHECKPOINT_FORMAT = 'xd_rcdepth.checkpoint'
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ('format', 'version', 'model_name', 'model_config', 'state_dict')
# Kept by export_weights: how the network wants its inputs (conventions.InputConventions.to_dict()).
OPTIONAL_KEYS = ('inputs',)


def save_checkpoint(path, model: nn.Module, extra: dict | None = None) -> Path:
    """Write ``model`` (and ``extra``) atomically: a reader never sees a half-written file."""
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(REQUIRED_KEYS))
    if clash:
        raise ValueError(f'extra must not override checkpoint keys {clash}')
    ckpt = {'format': CHECKPOINT_FORMAT, 'version': CHECKPOINT_VERSION,
            'model_name': model.model_name, 'model_config': config_to_dict(model.config),
            'state_dict': model.state_dict(), **extra}
    return atomic_save(ckpt, path)


def export_weights(src, dst, fp16: bool = True, metadata: dict | None = None) -> Path:
    """A deployable checkpoint: model name, config and weights only (no optimizer or run state).

    With ``fp16`` floating-point tensors are stored as half precision (half the size); loading casts
    them back into the fp32 model (``load_state_dict`` copies with conversion).
    """
    ckpt = read_checkpoint(src)
    state = {k: (v.half() if fp16 and v.is_floating_point() else v) for k, v in ckpt['state_dict'].items()}
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    out = {key: ckpt[key] for key in REQUIRED_KEYS + OPTIONAL_KEYS if key in ckpt}
    out.update(state_dict=state, weights_dtype='float16' if fp16 else 'float32',
               metadata=dict(metadata or {}, source_step=ckpt.get('step')))
    return atomic_save(out, dst)


def read_checkpoint(path, map_location='cpu') -> dict:
    """The checkpoint dict, validated (format, version, required keys); no model is built."""
    ckpt = safe_load(path, map_location, 'an xd_rcdepth checkpoint')
    if not isinstance(ckpt, dict):
        raise ValueError(f'not an xd_rcdepth checkpoint: {path} holds a {type(ckpt).__name__}, not a dict')
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f'not an xd_rcdepth checkpoint: missing key{"s" if len(missing) > 1 else ""} '
                         f'{", ".join(missing)} ({path})')
    if ckpt['format'] != CHECKPOINT_FORMAT:
        raise ValueError(f'not an xd_rcdepth checkpoint: format {ckpt["format"]!r} ({path})')
    if not isinstance(ckpt['version'], int) or ckpt['version'] > CHECKPOINT_VERSION:
        raise ValueError(f'checkpoint version {ckpt["version"]!r} is not supported '
                         f'(this code reads up to {CHECKPOINT_VERSION}): {path}')
    return ckpt


def load_model(path, map_location='cpu'):
    """Rebuild the model a checkpoint was saved from and load its weights.

    Returns (model in eval mode, checkpoint dict). ImageNet initialisation is skipped (the
    checkpoint's weights replace it, and the backbone file may not exist on this machine).
    """
    ckpt = read_checkpoint(path, map_location)
    config = dict(ckpt['model_config'])
    for key in ('pretrained_backbone', 'pretrained_radar_backbone'):
        if key in config:
            config[key] = None
    model = build_model(ckpt['model_name'], **config)
    state = ckpt['state_dict']
    if state and all(k.startswith('module.') for k in state):  # saved from a DDP wrapper
        state = {k[len('module.'):]: v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f'checkpoint {path} does not fit model {ckpt["model_name"]!r}: {exc}') from None
    model.to(map_location if isinstance(map_location, (str, torch.device)) else 'cpu')
    return model.eval(), ckpt
