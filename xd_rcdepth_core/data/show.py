"""One picture of a Frame for `xd-rcdepth show`: a 3 x 2 grid drawn with the shared ``viz`` colour scale.

    image                     | image + radar points
    image + single-sweep GT   | image + accumulated GT
    interpolated GT           | dense depth (synthetic) or blank
"""
from __future__ import annotations

import cv2
import numpy as np

from ..geometry import project_points
from ..viz import colorize_depth, overlay_points

MAX_DEPTH_SHOWN = 80.0   # metres at the far end of the colour scale (the paper's widest range)


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    tile = np.ascontiguousarray(tile).copy()
    scale = max(tile.shape[1] / 1600.0, 0.35)
    thick = max(int(round(2 * scale)), 1)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    cv2.rectangle(tile, (0, 0), (w + 8, h + base + 8), (0, 0, 0), -1)
    cv2.putText(tile, text, (4, h + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return tile


def _points_over(image, depth, text, radius, max_depth):
    if depth is None:
        return _label(np.zeros_like(image), f'{text}: none')
    v, u = np.nonzero(depth > 0)
    dim = (image.astype(np.float32) * 0.45).astype(np.uint8)
    return _label(overlay_points(dim, u, v, depth[v, u], max_depth, radius), f'{text} ({u.size} px)')


def _colourised(depth, text, shape, max_depth):
    if depth is None:
        return _label(np.zeros(shape, np.uint8), f'{text}: none')
    return _label(colorize_depth(depth, max_depth), text)


def render_frame(frame, max_depth: float = MAX_DEPTH_SHOWN) -> np.ndarray:
    """H*3 x W*2 x 3 uint8 RGB picture of a Frame (see module docstring)."""
    img = frame.image
    scale = frame.width / 1600.0
    radar = project_points(frame.radar_in_camera(), frame.K, frame.height, frame.width)
    tiles = [
        _label(img, frame.name or 'image'),
        _label(overlay_points(img, radar.u, radar.v, radar.depth, max_depth, max(int(round(6 * scale)), 1)),
               f'radar ({len(radar)} of {frame.radar.shape[0]} points in view)'),
        _points_over(img, frame.depth_sparse, 'single-sweep lidar GT', max(int(round(2 * scale)), 0), max_depth),
        _points_over(img, frame.depth_accumulated, 'accumulated lidar GT', 0, max_depth),
        _colourised(frame.depth_interp, f'interpolated GT (0-{max_depth:g} m, red = near)', img.shape, max_depth),
        _colourised(frame.depth_dense, 'dense depth', img.shape, max_depth) if frame.depth_dense is not None
        else np.zeros_like(img),
    ]
    return np.concatenate([np.concatenate(tiles[i:i + 2], axis=1) for i in range(0, 6, 2)], axis=0)
