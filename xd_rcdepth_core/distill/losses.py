"""Training losses: depth supervision, explainability-aligned KD (X-KD), depth-distribution KD (D2-KD).

Depth terms follow the references (docs/reference.md Part A 4.1): L1 = masked sum / mask count over the
batch with mask GT > 0.01 m; edge-aware smoothness = mean |dx d| exp(-mean_c |dx I|) + the same in y.

X-KD (docs/paper.md "Distillation 1"): Grad-CAM maps of teacher and student at the 1/16-scale image
encoder, radar encoder and decoder taps, flattened, L2-normalised, L_XKD = mean over layers of
(1 - cosine). The student's maps keep their graph (create_graph) so the loss trains the student; the
teacher's are constants: its weights are frozen, so its activations get gradients through inputs
that require grad (as pipeline.py does), and the maps are detached. The student trains with
BatchNorm on batch statistics, which would cancel its Grad-CAM weights across the batch
(saliency.py): its maps come from a second forward under ``frozen_batch_statistics``.

D2-KD (docs/paper.md "Distillation 2"): per pixel, logits z_i = -|d - c_i| over B bin centres, softmax
with temperature tau, L_D2KD = tau^2 * mean over pixels of KL(teacher || student).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .grouped_conv import fast_grouped_conv_grads
from .saliency import TAP_LAYERS, frozen_batch_statistics, grad_cam, saliency_target

# ----------------------------------------------------------------------------- depth supervision


def _full(x: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision tensors (losses are summed in full precision); float64 stays."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def valid_depth_mask(gt: torch.Tensor, min_depth: float) -> torch.Tensor:
    """GT pixels that supervise: finite and > min_depth (references: 0.01 m)."""
    return torch.isfinite(gt) & (gt > min_depth)


def masked_l1(pred: torch.Tensor, gt: torch.Tensor, min_depth: float) -> torch.Tensor:
    """Sum of |pred - gt| over valid GT pixels / their count (0 with a graph when there are none)."""
    mask = valid_depth_mask(gt, min_depth)
    gt = torch.where(mask, _full(gt), torch.zeros((), device=gt.device))   # no NaN reaches backward
    diff = (_full(pred) - gt).abs() * mask
    return diff.sum() / mask.sum().clamp(min=1)


def edge_aware_smoothness(depth: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """mean |dx d| exp(-mean_c |dx I|) + mean |dy d| exp(-mean_c |dy I|) on the normalised image."""
    depth, image = _full(depth), _full(image)
    dx_d = (depth[..., :, 1:] - depth[..., :, :-1]).abs()
    dy_d = (depth[..., 1:, :] - depth[..., :-1, :]).abs()
    dx_i = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(dim=1, keepdim=True)
    dy_i = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(dim=1, keepdim=True)
    return (dx_d * torch.exp(-dx_i)).mean() + (dy_d * torch.exp(-dy_i)).mean()


def confidence_bce(confidence: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the teacher's radar confidence over `mask` pixels (mean over them).

    Computed in float32 outside autocast (binary_cross_entropy is not autocast-safe)."""
    p = confidence.float().clamp(1e-6, 1 - 1e-6)
    bce = F.binary_cross_entropy(p, target.float(), reduction='none')
    m = mask.to(bce.dtype)
    return (bce * m).sum() / m.sum().clamp(min=1)


# ----------------------------------------------------------------------------- X-KD


def saliency_maps(outputs: dict, layers=TAP_LAYERS, mask: torch.Tensor | None = None,
                  create_graph: bool = False) -> dict:
    """Grad-CAM maps (B x 1 x h x w) of phi = mean predicted depth (over `mask` where given).

    We differentiate phi times the pixel count: each sample's map is scaled by a positive constant,
    which the per-sample L2 normalisation of X-KD removes, and the gradients stay far from fp16
    underflow under mixed precision (d phi / d depth would be 1 / (H W) ~ 4e-6 at 352 x 704).
    """
    depth = _full(outputs['depth'])
    phi = saliency_target(depth, mask) * float(depth[0].numel())
    return grad_cam(outputs['taps'], phi, layers=tuple(layers), create_graph=create_graph)


def student_saliency(student: torch.nn.Module, image: torch.Tensor, radar: torch.Tensor, layers=TAP_LAYERS,
                     mask: torch.Tensor | None = None) -> dict:
    """The student's Grad-CAM maps for X-KD, differentiable w.r.t. its weights (create_graph).

    A forward of its own under ``frozen_batch_statistics``: in training mode the gradient through
    BatchNorm's batch mean sums to zero per channel over the batch, so the maps of the training
    forward are dominated by the other samples (and vanish at batch size 1). Pass the bare module,
    not a DistributedDataParallel wrapper: the gradients still reach the same parameters.
    """
    with frozen_batch_statistics(student), fast_grouped_conv_grads(student):
        out = student(image, radar)
    return saliency_maps(out, layers, mask, create_graph=True)


def teacher_saliency(teacher: torch.nn.Module, image: torch.Tensor, radar: torch.Tensor, layers=TAP_LAYERS,
                     mask: torch.Tensor | None = None):
    """(teacher outputs, maps), both detached: constants for the student.

    The teacher's weights do not require grad, so the inputs do: that puts every tap in a graph
    Grad-CAM can differentiate, without computing or storing weight gradients.
    """
    with torch.enable_grad(), frozen_batch_statistics(teacher):   # a no-op for a teacher in eval mode
        image = image.detach().requires_grad_(True)
        radar = radar.detach().requires_grad_(True)
        out = teacher(image, radar)
        maps = saliency_maps(out, layers, mask, create_graph=False)
    detached = {k: v.detach() for k, v in out.items() if isinstance(v, torch.Tensor)}
    return detached, {k: v.detach() for k, v in maps.items()}


def _match_size(a: torch.Tensor, b: torch.Tensor):
    """Resize the smaller map to the larger one's size (bilinear), as e.g. Conforti et al. do."""
    if a.shape[-2:] == b.shape[-2:]:
        return a, b
    if a.shape[-2] * a.shape[-1] < b.shape[-2] * b.shape[-1]:
        return F.interpolate(a, size=b.shape[-2:], mode='bilinear', align_corners=False), b
    return a, F.interpolate(b, size=a.shape[-2:], mode='bilinear', align_corners=False)


def xkd_loss(student_maps: dict, teacher_maps: dict, eps: float = 1e-12):
    """L_XKD = 1/|L| sum_l (1 - <a_l^S, a_l^T>) with flattened, L2-normalised maps, averaged over
    the batch. Returns (loss, {layer: 1 - cosine}).

    A sample whose teacher map is all zero (ReLU removed everything: no positive evidence at that
    layer) has no target to align to and is left out of that layer's mean; it would otherwise add a
    constant 1 without a gradient. An all-zero student map against a non-zero teacher map counts as
    cosine 0, the largest loss, instead of NaN."""
    if set(student_maps) != set(teacher_maps):
        raise ValueError(f'X-KD needs the same layers for teacher and student, got '
                         f'{sorted(student_maps)} and {sorted(teacher_maps)}')
    per_layer = {}
    for name in student_maps:
        s, t = _match_size(_full(student_maps[name]), _full(teacher_maps[name].detach()))
        has_target = (t.flatten(1).norm(dim=1) > eps).to(s.dtype)
        s = F.normalize(s.flatten(1), dim=1, eps=eps)
        t = F.normalize(t.flatten(1), dim=1, eps=eps)
        per_layer[name] = ((1.0 - (s * t).sum(dim=1)) * has_target).sum() / has_target.sum().clamp(min=1)
    loss = torch.stack(list(per_layer.values())).mean()
    return loss, per_layer


# ----------------------------------------------------------------------------- D2-KD


def bin_centres(bins: int, max_depth: float, min_depth: float = 0.0, device=None,
                dtype=torch.float32) -> torch.Tensor:
    """Centres of `bins` equal-width bins over [min_depth, max_depth]."""
    if bins < 2 or not max_depth > min_depth:
        raise ValueError(f'D2-KD needs at least 2 bins over a non-empty range, got {bins} over '
                         f'[{min_depth}, {max_depth}]')
    width = (max_depth - min_depth) / bins
    return min_depth + width * (torch.arange(bins, device=device, dtype=dtype) + 0.5)


def depth_log_distribution(depth: torch.Tensor, centres: torch.Tensor, tau: float) -> torch.Tensor:
    """log softmax_i(-|d - c_i| / tau): B x bins x H x W log-probabilities of a B x 1 x H x W depth."""
    logits = -(_full(depth) - centres.view(1, -1, 1, 1)).abs() / tau
    return F.log_softmax(logits, dim=1)


def d2kd_loss(student_depth: torch.Tensor, teacher_depth: torch.Tensor, centres: torch.Tensor, tau: float,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """tau^2 / |Omega| sum_p KL(q^T(p) || p^S(p)); Omega = all pixels, or `mask` (B x 1 x H x W)."""
    if tau <= 0:
        raise ValueError(f'D2-KD temperature must be positive, got {tau}')
    log_p = depth_log_distribution(student_depth, centres, tau)
    log_q = depth_log_distribution(teacher_depth.detach(), centres, tau)
    kl = (log_q.exp() * (log_q - log_p)).sum(dim=1, keepdim=True)
    if mask is None:
        mean_kl = kl.mean()
    else:
        m = mask.to(kl.dtype)
        mean_kl = (kl * m).sum() / m.sum().clamp(min=1)
    return tau ** 2 * mean_kl
