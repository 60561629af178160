"""Grad-CAM for dense depth regression, differentiable for explainability-aligned distillation (X-KD).

For a feature map F (B x C x h x w) inside the network and a scalar target phi of the output
(the paper: the image-level mean predicted depth; optionally the mean over valid-GT pixels):

    alpha_c = 1/(h w) * sum_ij d phi / d F_c(i, j)
    map     = ReLU( sum_c alpha_c F_c )

With ``create_graph=True`` the map stays differentiable w.r.t. the network's weights (second-order
gradients), which is what lets L_XKD train the student; the teacher's maps are computed without it
and detached.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

TAP_LAYERS = ('image', 'radar', 'decoder')


def saliency_target(depth: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """phi per sample: mean predicted depth over all pixels, or over `mask` (e.g. valid GT) where given.

    Samples whose mask is empty fall back to the mean over all pixels, so phi is always defined.
    """
    flat = depth.flatten(1)
    if mask is None:
        return flat.mean(dim=1)
    m = mask.flatten(1).to(depth.dtype)
    count = m.sum(dim=1)
    masked = (flat * m).sum(dim=1) / count.clamp(min=1)
    return torch.where(count > 0, masked, flat.mean(dim=1))


def grad_cam(features: dict, target: torch.Tensor, layers=TAP_LAYERS, create_graph: bool = False) -> dict:
    """Grad-CAM maps (B x 1 x h x w, non-negative) of `target` (B,) w.r.t. each named feature map.

    ``features`` must be tensors of the graph that produced ``target`` (the model's `taps`).
    Summing the per-sample targets keeps the samples independent: d(sum phi_b)/dF_b = d phi_b/dF_b.
    """
    tensors = [features[name] for name in layers]
    grads = torch.autograd.grad(target.sum(), tensors, create_graph=create_graph, retain_graph=True)
    maps = {}
    for name, feat, grad in zip(layers, tensors, grads):
        alpha = grad.mean(dim=(2, 3), keepdim=True)
        maps[name] = F.relu((alpha * feat).sum(dim=1, keepdim=True))
    return maps


def normalise_map(cam: torch.Tensor, size=None) -> torch.Tensor:
    """Scale each map to [0, 1] (for display), optionally resized bilinearly to `size` = (H, W).

    No additive epsilon: Grad-CAM values of an untrained network can be ~1e-12, and a constant map
    becomes zeros rather than noise.
    """
    if size is not None:
        cam = F.interpolate(cam, size=size, mode='bilinear', align_corners=False)
    flat = cam.flatten(1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    span = hi - lo
    scaled = (flat - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, scaled, torch.zeros_like(scaled)).view_as(cam)
