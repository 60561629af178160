"""The CaFNet radar confidence target (docs/reference.md Part A 1.5), the window rule.

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
