"""ImageNet initialisation from torchvision-format state_dict files on disk (nothing is downloaded)."""
from __future__ import annotations

import torch
import torch.nn as nn

from .files import safe_load


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
    state = safe_load(path, 'cpu', f'a torchvision state_dict for the {what}')
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
