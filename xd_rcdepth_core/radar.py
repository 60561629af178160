"""Radar point cloud -> sparse radar image, the network's radar input.

As in the references (docs/reference.md Part A 1.3): each radar point is projected into the camera and
writes its features (depth, RCS, vx, vy; raw values, no normalisation) at its pixel of an H x W x 4
zero image; on a pixel collision the nearer point wins. Velocities stay in the radar sensor frame
(the references feed the raw, not ego-compensated, fields).

Options the references do not use, off by default:
- vertical extension: radar has no reliable elevation, so a point may be drawn as a vertical
  segment spanning ``vertical_extension_m = (below, above)`` metres around its measured height
  (the segment's pixel length follows from its depth). Nearest still wins on collisions.
- multi-sweep accumulation (``accumulate_sweeps``): older sweeps are moved through the ego poses
  into the current camera frame (ego-motion compensation).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .config import PAPER, RADAR_CHANNELS
from .geometry import invert_transform, nearest_per_pixel, project_points, transform_points

# Which Frame radar column feeds which non-depth channel, in the order of RADAR_CHANNELS[1:].
DEFAULT_FEATURE_COLUMNS = ('rcs', 'vx', 'vy')


@dataclass(frozen=True)
class RadarEncodingConfig:
    """How radar points become the network's radar image."""

    feature_columns: tuple = DEFAULT_FEATURE_COLUMNS
    # (below, above) in metres around each point's height; (0, 0) = one pixel per point (references).
    vertical_extension_m: tuple = (0.0, 0.0)
    min_depth: float = PAPER.projection.min_depth
    border: int = PAPER.projection.border

    def __post_init__(self):
        below, above = self.vertical_extension_m
        if below < 0 or above < 0 or not np.isfinite(below + above):
            raise ValueError(f'vertical_extension_m must be two non-negative metres (below, above), '
                             f'got {self.vertical_extension_m}')

    @property
    def num_channels(self) -> int:
        return 1 + len(self.feature_columns)


@dataclass
class RadarEncodingStats:
    """What happened to the points of one cloud (counted, never silently lost)."""

    points_in: int = 0
    non_finite: int = 0          # NaN/inf in position or a used feature: dropped
    outside: int = 0             # behind the camera, nearer than min_depth or outside the image
    projected: int = 0           # landed in the image
    pixels: int = 0              # pixels written (collisions make this smaller than projected)
    missing_features: tuple = field(default_factory=tuple)  # feature columns the cloud lacks (zeros)

    collisions: int = 0          # projected points hidden by a nearer one on the same pixel


def radar_features(points: np.ndarray, fields: Sequence[str], feature_columns: Sequence[str]):
    """N x len(feature_columns) feature matrix; a column the cloud lacks becomes zeros (reported)."""
    fields = list(fields)
    feats = np.zeros((points.shape[0], len(feature_columns)), dtype=np.float32)
    missing = []
    for j, name in enumerate(feature_columns):
        if name in fields:
            feats[:, j] = points[:, fields.index(name)]
        else:
            missing.append(name)
    return feats, tuple(missing)


def encode_radar(points_cam: np.ndarray, features: np.ndarray, K: np.ndarray, height: int, width: int,
                 config: RadarEncodingConfig = RadarEncodingConfig(), channels_first: bool = False):
    """Sparse H x W x (1 + F) float32 radar image from camera-frame points and their features
    ((1 + F) x H x W with ``channels_first``: what an ONNX file takes, written so rather than transposed).

    Returns (image, stats). Channel 0 is the camera-frame depth in metres; 0 everywhere means no radar.
    """
    P = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim != 2 or feats.shape[0] != P.shape[0]:
        raise ValueError(f'radar features must be N x F with N = {P.shape[0]} points, got {feats.shape}')
    stats = RadarEncodingStats(points_in=int(P.shape[0]))
    finite = np.all(np.isfinite(P), axis=1) & np.all(np.isfinite(feats), axis=1)
    stats.non_finite = int((~finite).sum())
    P, feats = P[finite], feats[finite]
    channels = 1 + feats.shape[1]
    out = np.zeros((channels, height, width) if channels_first else (height, width, channels), dtype=np.float32)
    image = out.transpose(1, 2, 0) if channels_first else out   # H x W x C either way (a view of out)
    below, above = config.vertical_extension_m
    proj = project_points(P, K, height, width, config.min_depth, config.border)
    stats.projected = len(proj)
    stats.outside = int(P.shape[0] - len(proj))
    if len(proj) == 0:
        return out, stats
    u, v, z = proj.u, proj.v, proj.depth.astype(np.float32)
    values = np.concatenate([z[:, None], feats[proj.index]], axis=1)
    if below > 0 or above > 0:
        u, v, values = _vertical_segments(P[proj.index], u, values, K, height, below, above, config.border)
    keep = nearest_per_pixel(v, u, values[:, 0], width)
    image[v[keep], u[keep]] = values[keep]
    stats.pixels = int(np.count_nonzero(image[..., 0]))
    # Written pixels (one per point, or per segment row with the vertical extension) hidden by a nearer one.
    stats.collisions = int(len(values) - stats.pixels)
    return out, stats


def _vertical_segments(P, u, values, K, height, below, above, border):
    """Repeat each point over the rows its (below, above) height span covers at its depth.

    Rows stay inside the band plain projection can reach (``border`` < v < H - ``border``, rounded),
    so the extension never writes into the margin the references leave empty.
    """
    fy, cy = K[1, 1], K[1, 2]
    z = P[:, 2]
    # Camera y points down: "above" the point is smaller y.
    v_top = np.floor(fy * (P[:, 1] - above) / z + cy).astype(np.int64)
    v_bot = np.ceil(fy * (P[:, 1] + below) / z + cy).astype(np.int64)
    lo, hi = border, min(height - border, height - 1)
    v_top = np.clip(v_top, lo, hi)
    v_bot = np.clip(v_bot, lo, hi)
    counts = v_bot - v_top + 1
    rep = np.repeat(np.arange(P.shape[0]), counts)
    offsets = np.arange(rep.size) - np.repeat(np.cumsum(counts) - counts, counts)
    return u[rep], v_top[rep] + offsets, values[rep]


def encode_frame_radar(frame, config: RadarEncodingConfig = RadarEncodingConfig()):
    """The radar image of a Frame at the Frame's image size (see encode_radar)."""
    feats, missing = radar_features(frame.radar, frame.radar_fields, config.feature_columns)
    image, stats = encode_radar(frame.radar_in_camera(), feats, frame.K, frame.height, frame.width, config)
    stats.missing_features = missing
    return image, stats


@dataclass
class RadarSweep:
    """One radar sweep with the pose of the radar at its own timestamp."""

    points: np.ndarray           # N x F in the radar frame at `timestamp`
    T_world_radar: np.ndarray    # 4 x 4 radar -> world at `timestamp` (ego pose @ mounting)
    timestamp: float


def accumulate_sweeps(sweeps: Sequence[RadarSweep], T_world_target: np.ndarray,
                      target_time: float | None = None) -> np.ndarray:
    """Stack several sweeps in one frame, compensating ego motion through the world poses.

    Returns M x (F + 1) points: the xyz columns moved into the target frame (e.g. the radar at the
    camera time, or the camera itself), the other feature columns unchanged, and a last column
    ``dt`` = target_time - sweep time in seconds (0 when target_time is None). Moving targets are not
    compensated (their motion is unknown without tracking), as in the references' accumulation.
    """
    if len(sweeps) == 0:
        raise ValueError('accumulate_sweeps needs at least one sweep')
    T_target_world = invert_transform(T_world_target)
    out = []
    for sweep in sweeps:
        pts = np.asarray(sweep.points, dtype=np.float32)
        moved = pts.copy()
        moved[:, :3] = transform_points(T_target_world @ np.asarray(sweep.T_world_radar), pts[:, :3])
        dt = 0.0 if target_time is None else float(target_time) - float(sweep.timestamp)
        out.append(np.concatenate([moved, np.full((pts.shape[0], 1), dt, np.float32)], axis=1))
    return np.concatenate(out, axis=0)


__all__ = ['RADAR_CHANNELS', 'RadarEncodingConfig', 'RadarEncodingStats', 'RadarSweep', 'accumulate_sweeps',
           'encode_frame_radar', 'encode_radar', 'radar_features']
