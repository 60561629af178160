"""Parameter counts by part and multiply-accumulates of a model at an input size.

MACs are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one forward of a
(1, 3, H, W) image and a (1, 4, H, W) radar image under no_grad; MACs = FLOPs / 2. The count is
taken on the 'meta' device (shapes only, no arithmetic), so even the teacher at 896x1600 costs
well under a second; if some op cannot run on meta the count falls back to a real CPU forward.
Ops that are not matrix products (activations, pooling, interpolation) are not counted, as usual.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .registry import build_model


def params_by_part(model: nn.Module) -> dict:
    """Sum parameters per part; a parameter goes to the part with the longest matching prefix.
    Parameters that no part claims are reported as 'other', so the parts always add up."""
    prefixes = sorted(((p, part) for part, ps in model.PARTS.items() for p in ps), key=lambda t: -len(t[0]))
    counts = {part: 0 for part in model.PARTS}
    for name, param in model.named_parameters():
        part = next((part for p, part in prefixes if name == p or name.startswith(p + '.')), 'other')
        counts[part] = counts.get(part, 0) + param.numel()
    return counts


def count_macs(model: nn.Module, height: int, width: int, device='cpu') -> int:
    radar_channels = model.config.radar_channels
    image = torch.zeros(1, 3, height, width, device=device)
    radar = torch.zeros(1, radar_channels, height, width, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(image, radar)
    return counter.get_total_flops() // 2


def model_summary(name: str, height: int, width: int, **config) -> dict:
    """{'model', 'fusion', 'input', 'params_total', 'params_reference_comparable' (with the unused
    weights the paper's count includes), 'params_by_part', 'macs', 'gmacs'} for one model.
    ImageNet initialisation is skipped (it changes no count)."""
    if height < 1 or width < 1:
        raise ValueError(f'input size must be positive, got {height}x{width}')
    config = {**config, 'pretrained_backbone': None, 'pretrained_radar_backbone': None}
    with torch.device('meta'):
        model = build_model(name, **config).eval()
    try:
        macs = count_macs(model, height, width, device='meta')
    except (NotImplementedError, RuntimeError):
        macs = count_macs(build_model(name, **config).eval(), height, width)
    total = sum(p.numel() for p in model.parameters())
    # The paper's count of a model can include weights it never uses (CaFNet's ImageNet fc heads):
    # report the comparable figure beside ours rather than carrying dead weights.
    uncounted = getattr(model, 'REFERENCE_UNCOUNTED_PARAMS', 0)
    return {'model': name, 'fusion': model.config.fusion,
            'input': {'height': height, 'width': width, 'image_channels': 3,
                      'radar_channels': model.config.radar_channels},
            'params_total': total,
            'params_reference_comparable': total + uncounted,
            'params_unused_in_reference': uncounted,
            'params_by_part': params_by_part(model),
            'macs': macs, 'gmacs': macs / 1e9}
