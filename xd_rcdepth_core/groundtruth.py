"""Ground-truth depth maps from lidar: accumulate projected sweeps, then densify.

`accumulate_depth` is the references' merge rule (project every point of every sweep into the target
camera; on a pixel collision the nearest point wins, the occlusion rule). `interpolate_depth` is
their densification (docs/reference.md Part A 1.4): piecewise-linear interpolation over the Delaunay
triangulation of the valid pixels' (row, col), 0 outside the convex hull, not in log space.

The references call scipy's LinearNDInterpolator, which takes seconds per 900 x 1600 map. The
default here computes the same function faster: OpenCV's incremental Delaunay (Subdiv2D) triangulates
the valid pixels and a vectorised rasteriser fills every triangle with its plane, using exact
integer edge functions, so a pixel belongs to a triangle exactly when its centre is inside or on the
edge, as in scipy. Where the Delaunay triangulation is not unique (four co-circular pixels, common
on the integer grid) the two libraries may split a quad along different diagonals; both are
Delaunay, and on such a quad the values differ only by the choice of diagonal. method='scipy' gives
the reference computation itself.
"""
from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

from .config import PAPER
from .geometry import project_points, sparse_depth_map


def accumulate_depth(point_sets: Iterable[np.ndarray], K, height: int, width: int,
                     min_depth: float = PAPER.projection.min_depth,
                     border: int = PAPER.projection.border) -> np.ndarray:
    """H x W float32 depth (0 = none) of camera-frame N x 3 point sets; nearest point wins per pixel.

    Each set is typically one lidar sweep already transformed into the target camera frame (with
    moving objects removed by the caller). Projection rules are geometry.project_points'.
    """
    sets = [np.asarray(p, dtype=np.float64).reshape(-1, 3) for p in point_sets]
    points = np.concatenate(sets, axis=0) if sets else np.zeros((0, 3))
    projection = project_points(points, K, height, width, min_depth=min_depth, border=border)
    return sparse_depth_map(projection, height, width)


def merge_depth_maps(maps: Iterable[np.ndarray]) -> np.ndarray:
    """Per pixel the nearest non-zero depth of several H x W maps (0 where all are 0)."""
    out = None
    for m in maps:
        m = np.asarray(m, dtype=np.float32)
        if out is None:
            out = m.copy()
            continue
        take = (m > 0) & ((out <= 0) | (m < out))
        out[take] = m[take]
    if out is None:
        raise ValueError('merge_depth_maps needs at least one map')
    return out


def interpolate_depth(sparse: np.ndarray, method: str = 'delaunay') -> np.ndarray:
    """Dense H x W float32 map: linear interpolation of the valid (> 0) pixels over their Delaunay
    triangulation in (row, col), 0 outside the convex hull. method: 'delaunay' (fast, see module
    docstring) or 'scipy' (LinearNDInterpolator, like the references)."""
    sparse = np.asarray(sparse, dtype=np.float32)
    if sparse.ndim != 2:
        raise ValueError(f'interpolate_depth needs an H x W map, got shape {sparse.shape}')
    H, W = sparse.shape
    rows, cols = np.nonzero(np.isfinite(sparse) & (sparse > 0))
    out = np.zeros((H, W), np.float32)
    if rows.size < 3 or _collinear(rows, cols):
        out[rows, cols] = sparse[rows, cols]
        return out
    if method == 'scipy':
        return _interpolate_scipy(sparse, rows, cols)
    if method != 'delaunay':
        raise ValueError(f"interpolate_depth method must be 'delaunay' or 'scipy', got {method!r}")
    triangles = _delaunay(cols, rows, W, H)
    if triangles is None:
        return _interpolate_scipy(sparse, rows, cols)
    x, y = triangles[..., 0], triangles[..., 1]
    _fill_triangles(out, x, y, sparse[y, x])
    out[rows, cols] = sparse[rows, cols]
    return out


def _collinear(rows, cols) -> bool:
    p = np.stack([cols, rows], axis=1).astype(np.float64)
    p -= p[0]
    return np.linalg.matrix_rank(p, tol=1e-9) < 2


def _interpolate_scipy(sparse, rows, cols) -> np.ndarray:
    from scipy.interpolate import LinearNDInterpolator
    H, W = sparse.shape
    f = LinearNDInterpolator(np.stack([rows, cols], axis=1).astype(np.float64), sparse[rows, cols],
                             fill_value=0.0)
    gr, gc = np.mgrid[0:H, 0:W]
    return f(np.stack([gr.ravel(), gc.ravel()], axis=1).astype(np.float64)).reshape(H, W).astype(np.float32)


def _delaunay(x, y, width, height):
    """(T, 3, 2) int64 triangles (x, y) covering the convex hull, or None if coverage cannot be ensured.

    Subdiv2D starts from a bounding triangle at a finite distance; a too-small one can leave slivers
    along nearly collinear hull edges uncovered, so coverage is checked against the hull's area and
    the bounding box enlarged if needed.
    """
    pts = np.stack([x, y], axis=1).astype(np.float32)     # raster order: Subdiv2D's point location walks are short
    hull_area = cv2.contourArea(cv2.convexHull(pts))
    for scale in (10, 1000):
        subdiv = cv2.Subdiv2D((-scale * width, -scale * height, (2 * scale + 1) * width, (2 * scale + 1) * height))
        subdiv.insert(pts)
        tri = np.rint(subdiv.getTriangleList().reshape(-1, 3, 2)).astype(np.int64)
        a = (tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1]) - \
            (tri[:, 2, 0] - tri[:, 0, 0]) * (tri[:, 1, 1] - tri[:, 0, 1])
        if abs(np.abs(a).sum() / 2.0 - hull_area) < 0.5:
            return tri
    return None


# Triangles are filled in groups whose bounding boxes round up to the same bucket size, so each group
# is one dense (triangles, rows, cols) array operation.
_BUCKETS = np.array([1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256,
                     320, 384, 512, 640, 768, 1024, 1280, 1600, 2048, 2560, 3200, 4096, 8192, 16384])


def _fill_triangles(out: np.ndarray, x: np.ndarray, y: np.ndarray, v: np.ndarray) -> None:
    """Write into `out` the linear interpolation of vertex values v over each triangle (x, y int)."""
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    keep = area != 0
    x, y, v, area = x[keep], y[keep], v[keep].astype(np.float64), area[keep]
    sign = np.sign(area)
    # edge function of the edge opposite vertex k: w_k(p) = A_k px + B_k py + C_k, >= 0 inside
    i, j = np.array([1, 2, 0]), np.array([2, 0, 1])
    A = (y[:, i] - y[:, j]) * sign[:, None]
    B = (x[:, j] - x[:, i]) * sign[:, None]
    C = (x[:, i] * y[:, j] - x[:, j] * y[:, i]) * sign[:, None]
    # the interpolated value is the plane sum_k w_k v_k / |area|
    inv_area = 1.0 / np.abs(area)
    plane_a, plane_b = (A * v).sum(axis=1) * inv_area, (B * v).sum(axis=1) * inv_area
    plane_c = (C * v).sum(axis=1) * inv_area
    x0, y0 = x.min(axis=1), y.min(axis=1)
    C = C + A * x0[:, None] + B * y0[:, None]          # relative to the bounding box corner
    # integers below 2^24 are exact in float32, so the inside test is exact
    A, B, C = A.astype(np.float32), B.astype(np.float32), C.astype(np.float32)
    bx = np.searchsorted(_BUCKETS, x.max(axis=1) - x0 + 1)
    by = np.searchsorted(_BUCKETS, y.max(axis=1) - y0 + 1)
    key = by * len(_BUCKETS) + bx
    order = np.argsort(key, kind='stable')
    splits = np.flatnonzero(np.diff(key[order])) + 1
    for group in np.split(order, splits):
        nx, ny = int(_BUCKETS[bx[group[0]]]), int(_BUCKETS[by[group[0]]])
        gx = np.arange(nx, dtype=np.float32)[None, None, :]
        gy = np.arange(ny, dtype=np.float32)[None, :, None]
        w = np.empty((group.size, ny, nx), np.float32)
        inside = None
        for k in range(3):
            np.add(A[group, k, None, None] * gx, B[group, k, None, None] * gy + C[group, k, None, None], out=w)
            inside = w >= 0 if inside is None else inside & (w >= 0)
        flat = np.flatnonzero(inside)
        t, rem = np.divmod(flat, nx * ny)
        jy, jx = np.divmod(rem, nx)
        tri = group[t]
        px, py = x0[tri] + jx, y0[tri] + jy
        out[py, px] = plane_a[tri] * px + plane_b[tri] * py + plane_c[tri]
