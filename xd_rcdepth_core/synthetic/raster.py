"""A z-buffer rasteriser for planar convex polygons with exact per-pixel depth.

For a plane n . X = d (camera frame), a pixel ray X = z K^-1 (u, v, 1) meets it at
1/z = (K^-T n / d) . (u, v, 1): inverse depth is affine in pixel coordinates. So each polygon is
filled (cv2.fillConvexPoly over its bounding box) and its inverse depth evaluated analytically at
every pixel centre; the buffer keeps the largest inverse depth (the nearest surface). Depth is exact
up to float32 rounding, which is what lets tests check the dense depth against geometry.
"""
from __future__ import annotations

import cv2
import numpy as np

SUBPIXEL_BITS = 4     # cv2 fixed-point vertices: 1/16 pixel


def clip_polygon(poly: np.ndarray, normal, offset: float) -> np.ndarray:
    """Sutherland-Hodgman against one half-space: keep points p with normal . p >= offset."""
    if len(poly) == 0:
        return poly
    dist = poly @ np.asarray(normal, dtype=np.float64) - offset
    if np.all(dist >= 0):
        return poly
    if np.all(dist < 0):
        return poly[:0]
    out = []
    n = len(poly)
    for i in range(n):
        j = (i + 1) % n
        a, b, da, db = poly[i], poly[j], dist[i], dist[j]
        if da >= 0:
            out.append(a)
        if (da >= 0) != (db >= 0):
            out.append(a + (b - a) * (da / (da - db)))
    return np.array(out) if out else poly[:0]


class DepthRaster:
    """Inverse-depth and surface-id buffers of one camera image.

    inv_depth: H x W float32, 0 where nothing was drawn. surface: H x W int32 id given by the caller
    (0 = nothing). `near` is the clipping plane; surfaces beyond `far` are not drawn.
    """

    def __init__(self, K, height: int, width: int, near: float = 0.05, far: float = 200.0):
        self.K = np.asarray(K, dtype=np.float64)
        self.K_inv_T = np.linalg.inv(self.K).T
        self.height, self.width = int(height), int(width)
        self.near, self.far = float(near), float(far)
        self.inv_depth = np.zeros((self.height, self.width), np.float32)
        self.surface = np.zeros((self.height, self.width), np.int32)
        self._u = np.arange(self.width, dtype=np.float32)
        self._v = np.arange(self.height, dtype=np.float32)
        # 2D guard band: polygons are clipped to it so cv2's fixed-point coordinates never overflow
        g = 2.0 * max(self.width, self.height)
        self._guard = [((1, 0), -g), ((-1, 0), -(self.width + g)), ((0, 1), -g), ((0, -1), -(self.height + g))]

    def _plane_coefficients(self, normal, d):
        """(a, b, c) with 1/z = a u + b v + c for the camera-frame plane normal . X = d."""
        return self.K_inv_T @ np.asarray(normal, dtype=np.float64) / d

    def draw_plane(self, normal, d: float, surface_id: int) -> None:
        """An infinite plane (the ground) over the whole image, up to the far distance."""
        a, b, c = self._plane_coefficients(normal, d).astype(np.float32)
        inv = self._v[:, None] * b + (self._u[None, :] * a + c)
        win = (inv > 1.0 / self.far) & (inv > self.inv_depth)
        self.inv_depth[win] = inv[win]
        self.surface[win] = surface_id

    def project_polygon(self, vertices_cam: np.ndarray):
        """Clip a camera-frame polygon to the near plane and the guard band; (clipped 3D, n x 2 pixels)
        or None when nothing is left."""
        poly = np.asarray(vertices_cam, dtype=np.float64)
        if poly[:, 2].min() < self.near:
            poly = clip_polygon(poly, (0.0, 0.0, 1.0), self.near)
            if len(poly) < 3:
                return None
        uvw = poly @ self.K.T
        uv = uvw[:, :2] / uvw[:, 2:3]
        lo, hi = uv.min(axis=0), uv.max(axis=0)
        if lo[0] < self._guard[0][1] or lo[1] < self._guard[2][1] or \
                hi[0] > -self._guard[1][1] or hi[1] > -self._guard[3][1]:
            for n2, off in self._guard:
                uv = clip_polygon(uv, n2, off)
                if len(uv) < 3:
                    return None
        return poly, uv

    def fill_mask(self, mask: np.ndarray, vertices_cam: np.ndarray, value: int = 1) -> None:
        """Paint a camera-frame polygon into a full-size uint8 mask (no depth test): shadows."""
        projected = self.project_polygon(vertices_cam)
        if projected is not None:
            pts = np.round(projected[1] * (1 << SUBPIXEL_BITS)).astype(np.int32)
            cv2.fillConvexPoly(mask, pts, value, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)

    def draw_polygon(self, vertices_cam: np.ndarray, normal, surface_id: int) -> bool:
        """A planar convex polygon (n x 3 camera-frame vertices, outward normal). True if drawn."""
        projected = self.project_polygon(vertices_cam)
        if projected is None:
            return False
        poly, uv = projected
        d = float(np.dot(normal, poly[0]))
        if d >= 0:                      # seen from behind or edge-on
            return False
        inv_lo, inv_hi = 1.0 / poly[:, 2].max(), 1.0 / poly[:, 2].min()
        x0, y0 = max(int(np.floor(uv[:, 0].min())), 0), max(int(np.floor(uv[:, 1].min())), 0)
        x1 = min(int(np.ceil(uv[:, 0].max())), self.width - 1)
        y1 = min(int(np.ceil(uv[:, 1].max())), self.height - 1)
        if x1 < x0 or y1 < y0:
            return False
        mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
        pts = np.round((uv - (x0, y0)) * (1 << SUBPIXEL_BITS)).astype(np.int32)
        cv2.fillConvexPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
        a, b, c = self._plane_coefficients(normal, d).astype(np.float32)
        inv = self._v[y0:y1 + 1, None] * b + (self._u[None, x0:x1 + 1] * a + c)
        # Edge pixels whose centre lies just outside the polygon would extrapolate the plane (wildly,
        # for faces seen at a grazing angle); the true values lie between the vertices' values.
        np.clip(inv, inv_lo, inv_hi, out=inv)
        buf = self.inv_depth[y0:y1 + 1, x0:x1 + 1]
        win = mask.view(bool) & (inv > buf) & (inv > 1.0 / self.far)
        buf[win] = inv[win]
        self.surface[y0:y1 + 1, x0:x1 + 1][win] = surface_id
        return True

    def depth(self) -> np.ndarray:
        """H x W float32 metres, 0 where nothing was drawn."""
        out = np.zeros_like(self.inv_depth)
        hit = self.inv_depth > 0
        out[hit] = 1.0 / self.inv_depth[hit]
        return out
