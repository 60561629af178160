"""Grad-CAM for dense depth regression, differentiable for explainability-aligned distillation (X-KD).

For a feature map F (B x C x h x w) inside the network and a scalar target phi of the output
(the paper: the image-level mean predicted depth; optionally the mean over valid-GT pixels):

    alpha_c = 1/(h w) * sum_ij d phi / d F_c(i, j)
    map     = ReLU( sum_c alpha_c F_c )

With ``create_graph=True`` the map stays differentiable w.r.t. the network's weights (second-order
gradients), which is what lets L_XKD train the student; the teacher's maps are computed without it
and detached.

BatchNorm in training mode couples the samples of a batch: the gradient reaching a BatchNorm input
sums to zero over (batch, h, w) per channel, so Grad-CAM weights of a tap that reaches the output
only through BatchNorm cancel across the batch (exactly zero at batch size 1). Maps of a network in
training mode are therefore taken under ``frozen_batch_statistics``: the same activations, with the
batch's mean and variance treated as constants, which is the network's eval-mode arithmetic on this
batch's statistics.
"""
from __future__ import annotations

import contextlib
import types

import torch
import torch.nn as nn
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


def _batch_norm_constant_stats(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    dims = [0] + list(range(2, x.dim()))
    mean = x.detach().float().mean(dim=dims)
    var = x.detach().float().var(dim=dims, unbiased=False)
    return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)


@contextlib.contextmanager
def frozen_batch_statistics(model: nn.Module):
    """Within the block, BatchNorm layers in training mode normalise with the batch's statistics as
    constants (no gradient through them) and leave their running statistics alone.

    The activations equal the training forward's; only the coupling between samples in the
    backward pass is gone, which is what Grad-CAM of a training network needs (module docstring).
    Layers already in eval mode are per-sample and stay as they are.
    """
    patched = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for m in patched:
        m.forward = types.MethodType(_batch_norm_constant_stats, m)
    try:
        yield model
    finally:
        for m in patched:
            del m.forward


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
