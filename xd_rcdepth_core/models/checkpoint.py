"""Weights on disk: our checkpoints (save / load) and torchvision ImageNet backbone files.

Everything is read with ``torch.load(..., weights_only=True)``: a file can only hold tensors and
plain containers, so loading a foreign or malicious pickle never runs its code.

Checkpoint layout (a plain dict; training may add keys such as optimizer, scheduler, step):
    format 'xd_rcdepth.checkpoint', version 1, model_name, model_config (plain dict),
    state_dict, plus whatever ``extra`` held.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

CHECKPOINT_FORMAT = 'xd_rcdepth.checkpoint'
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ('format', 'version', 'model_name', 'model_config', 'state_dict')


def save_checkpoint(path, model: nn.Module, extra: dict | None = None) -> Path:
    """Write ``model`` (and ``extra``) atomically: a reader never sees a half-written file."""
    from .registry import config_to_dict
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(REQUIRED_KEYS))
    if clash:
        raise ValueError(f'extra must not override checkpoint keys {clash}')
    ckpt = {'format': CHECKPOINT_FORMAT, 'version': CHECKPOINT_VERSION,
            'model_name': model.model_name, 'model_config': config_to_dict(model.config),
            'state_dict': model.state_dict(), **extra}
    return _atomic_save(ckpt, path)


def export_weights(src, dst, fp16: bool = True, metadata: dict | None = None) -> Path:
    """A deployable checkpoint: model name, config and weights only (no optimizer or run state).

    With ``fp16`` floating-point tensors are stored as half precision (half the size); loading casts
    them back into the fp32 model (``load_state_dict`` copies with conversion).
    """
    ckpt = read_checkpoint(src)
    state = {k: (v.half() if fp16 and v.is_floating_point() else v) for k, v in ckpt['state_dict'].items()}
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    out = {key: ckpt[key] for key in REQUIRED_KEYS}
    out.update(state_dict=state, weights_dtype='float16' if fp16 else 'float32',
               metadata=dict(metadata or {}, source_step=ckpt.get('step')))
    return _atomic_save(out, dst)


def _atomic_save(ckpt: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _safe_load(path, map_location, what: str):
    """torch.load(weights_only=True) with errors that say which file and what was expected;
    ``what`` is a noun phrase such as 'an xd_rcdepth checkpoint'."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'file not found: {path} (expected {what})')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling refused, not a torch file, truncated, ...
        first_line = (str(exc).strip().splitlines() or [''])[0]
        raise ValueError(f'not {what}: {path} cannot be read as plain tensors '
                         f'(torch.load weights_only=True: {type(exc).__name__}: {first_line})') from None


def read_checkpoint(path, map_location='cpu') -> dict:
    """The checkpoint dict, validated (format, version, required keys); no model is built."""
    ckpt = _safe_load(path, map_location, 'an xd_rcdepth checkpoint')
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
    from .registry import build_model
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


# ----------------------------------------------------------------------------- ImageNet backbones

def _describe(keys, limit=8) -> str:
    keys = sorted(keys)
    more = f' (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def load_torchvision_backbone(encoder: nn.Module, path, what: str, allow_first_conv_mismatch: bool = False):
    """Load a torchvision-format state_dict (e.g. ``torchvision.models.mobilenet_v2().state_dict()``
    saved with torch.save) into ``encoder.backbone``.

    Keys of the ImageNet head (``encoder.TORCHVISION_EXTRA``) are ignored. With
    ``allow_first_conv_mismatch`` (radar encoders) a first conv whose shape differs is left at its
    initialisation, as the references do for non-RGB inputs. Anything else that does not match -
    missing keys, unexpected keys, other shapes - raises ValueError naming them.
    """
    state = _safe_load(path, 'cpu', f'a torchvision state_dict for the {what}')
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'pretrained file for the {what} is not a state_dict of tensors: {path}')
    target = encoder.backbone.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith(encoder.TORCHVISION_EXTRA)}
    missing = set(target) - set(state)
    unexpected = set(state) - set(target)
    shapes = {k for k in set(target) & set(state) if target[k].shape != state[k].shape}
    if allow_first_conv_mismatch and encoder.FIRST_CONV in shapes:
        shapes.discard(encoder.FIRST_CONV)
        del state[encoder.FIRST_CONV]
        missing.add(encoder.FIRST_CONV)   # stays at its initialisation (allowed below)
        allowed_missing = {encoder.FIRST_CONV}
    else:
        allowed_missing = set()
    problems = []
    if missing - allowed_missing:
        problems.append(f'missing keys: {_describe(missing - allowed_missing)}')
    if unexpected:
        problems.append(f'unexpected keys: {_describe(unexpected)}')
    if shapes:
        problems.append('shape mismatches: ' + _describe(
            f'{k} file {tuple(state[k].shape)} vs model {tuple(target[k].shape)}' for k in shapes))
    if problems:
        raise ValueError(f'pretrained file {path} does not match the {what}: ' + '; '.join(problems))
    encoder.backbone.load_state_dict(state, strict=False)
