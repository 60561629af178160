"""Targets built from the lidar ground truth: CaFNet's radar confidence (docs/reference.md Part A 1.5,
the window rule) and RadarNet's stage-1 correspondence labels (Part A 4.4), with that stage's lidar points
standing in for radar.

CaFNet's confidence target.

For every radar point (depth d at pixel (v, u)): the region is a window of +-50 rows and +-150 columns
around it (clipped to the image). Inside the region the label is 1 where |GT_interp - d| < 0.4 m,
else 0. Regions are *assigned*, so a later point overwrites an earlier point's labels, as in the
reference. The reference takes a box's 2D bounding box as the region when the point lies in an
annotated 3D box; we have no box ids in the cache, so every point uses the window.

Differences we accept: points come from the (cropped, flipped) radar image, so their order is raster
order (row-major) instead of the radar file's order, and points outside the training crop do not
contribute (the reference builds the target at full resolution, then crops).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def confidence_target_map(radar_depth: np.ndarray, gt_interp: np.ndarray, window=(50, 150),
                          threshold: float = 0.4) -> np.ndarray:
    """H x W float32 labels in {0, 1} of one sample (radar_depth: the radar image's depth channel)."""
    H, W = radar_depth.shape
    half_rows, half_cols = int(window[0]), int(window[1])
    label = np.zeros((H, W), np.float32)
    rows, cols = np.nonzero(radar_depth > 0)      # raster order
    for v, u in zip(rows, cols):
        r0, r1 = max(v - half_rows, 0), min(v + half_rows + 1, H)
        c0, c1 = max(u - half_cols, 0), min(u + half_cols + 1, W)
        label[r0:r1, c0:c1] = np.abs(gt_interp[r0:r1, c0:c1] - radar_depth[v, u]) < threshold
    return label


def confidence_target(radar: torch.Tensor, gt_interp: torch.Tensor, window=(50, 150),
                      threshold: float = 0.4) -> torch.Tensor:
    """B x 1 x H x W labels of a batch (radar B x C x H x W with depth in channel 0, GT B x 1 x H x W).

    Runs on the CPU in numpy (a loop over points with slice writes), before the batch moves to the GPU.
    """
    radar_np = radar[:, 0].detach().cpu().numpy()
    gt_np = gt_interp[:, 0].detach().cpu().numpy()
    labels = [confidence_target_map(r, g, window, threshold) for r, g in zip(radar_np, gt_np)]
    return torch.from_numpy(np.stack(labels))[:, None]


# ----------------------------------------------------------------------------- RadarNet stage 1

def correspondence_target(points: torch.Tensor, valid: torch.Tensor, gt_interp: torch.Tensor, patch_width: int,
                          threshold: float = 0.4):
    """(label, weight), each B x K x H x P, of RadarNet's stage 1 (docs/reference.md Part A 4.4).

    points (B, K, 3): u, v (pixels) and z (metres) of each point slot; valid (B, K): which slots hold a
    point; gt_interp (B, 1, H, W). Slot (b, k)'s patch is every row and the P columns u - P/2 ...
    u + P/2 - 1 (the model's window). label = 1 where the interpolated lidar depth is valid (> 0) and
    within ``threshold`` of z (|GT_interp - z| < 0.4 m), else 0: pixels without lidar are negatives, as
    the reference's --set_invalid_to_negative. weight = 1 on the patch's pixels inside the image for
    valid slots, 0 on columns outside the image (the window's padding) and on empty slots.
    """
    B, K = valid.shape
    H, W = gt_interp.shape[-2:]
    half = patch_width // 2
    gt = F.pad(gt_interp[:, 0], (half, half))                                  # B x H x (W + P)
    cols = points[..., 0].long()[..., None] + torch.arange(patch_width, device=points.device)   # padded columns
    index = cols[:, :, None, :].expand(B, K, H, patch_width)
    window = gt[:, None].expand(B, K, H, W + 2 * half).gather(3, index)
    z = points[..., 2].to(window.dtype)[..., None, None]
    label = ((window > 0) & ((window - z).abs() < threshold)).to(gt_interp.dtype)
    inside = (cols >= half) & (cols < W + half)
    weight = (valid[..., None, None] & inside[:, :, None, :]).expand(B, K, H, patch_width).to(gt_interp.dtype)
    return label, weight


def sample_radar_points(radar: torch.Tensor, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The radar image with at most ``count`` of each image's points (depth > 0) kept, drawn at random
    (RadarNet's stage 1 trains on 4 points per image, docs/reference.md Part A 4.4); the rest zeroed."""
    out = radar.clone()
    for b in range(radar.shape[0]):
        flat = out[b].flatten(1)
        where = torch.nonzero(flat[0] > 0).flatten()
        if where.numel() > count:
            drop = where[torch.randperm(where.numel(), generator=generator)[count:]]
            flat[:, drop] = 0
    return out


def lidar_points_for_radar(radar: torch.Tensor, gt_interp: torch.Tensor, p: float, u_noise_px: float,
                           depth_noise: float, reference_width: int = 1600,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """RadarNet's stage-1 augmentation (docs/reference.md Part A 4.4): with probability ``p`` per image the
    radar points are replaced by as many interpolated-lidar points at random pixels, their column moved by
    N(0, u_noise_px) (px at ``reference_width`` px wide, scaled with the image) and their depth raised by
    U[0, depth_noise] m. Only the depth channel is written (stage 1 reads no other); the nearer point keeps
    a shared pixel. Draws from ``generator`` (default: torch's global one)."""
    out = radar.clone()
    B, C, H, W = radar.shape
    sigma = u_noise_px * W / reference_width
    for b in range(B):
        if float(torch.rand((), generator=generator)) >= p:
            continue
        rows, cols = torch.nonzero(gt_interp[b, 0] > 0, as_tuple=True)
        if rows.numel() == 0:
            continue
        n = max(int((radar[b, 0] > 0).sum()), 1)
        pick = torch.randint(rows.numel(), (n,), generator=generator)
        v, u = rows[pick], cols[pick]
        z = gt_interp[b, 0, v, u] + depth_noise * torch.rand(n, generator=generator)
        noise = sigma * torch.randn(n, dtype=torch.float64, generator=generator)
        u = (u.to(torch.float64) + noise).round().clamp(0, W - 1).long()
        nearest = torch.full((H * W,), float('inf'), dtype=z.dtype).scatter_reduce(0, v * W + u, z, 'amin')
        out[b] = 0
        out[b, 0] = torch.where(torch.isfinite(nearest), nearest, torch.zeros_like(nearest)).view(H, W).to(radar.dtype)
    return out
