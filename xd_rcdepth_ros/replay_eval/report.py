"""What a replay evaluation writes: metrics.json, metrics.md, PNG panels of chosen frames.

metrics.json extends MetricAccumulator.result() ({'by_range': {'50': {...}, ...}, 'images': N}, the
schema of offline evaluation) with:
    valid (false when no frame had ground truth: the by_range values are then null, never zeros),
    invalid_reason, mode, bag, checkpoint, layout, frames (one record per processed frame: stamp,
    metrics per range, radar points, sync offsets, latency), dropped_frames (stamp, reason),
    images_in_bag, pairing (RadarImagePairer counters), latency_ms (count, mean, p50, p95, max).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from xd_rcdepth_core import viz
from xd_rcdepth_core.geometry import project_points
from xd_rcdepth_core.metrics import MetricAccumulator, markdown_table
from xd_rcdepth_core.viz import save_png

from .node_account import split_line


def latency_stats(values, kind: str) -> dict:
    v = np.asarray([x for x in values if x is not None], np.float64)
    if v.size == 0:
        return {'kind': kind, 'count': 0, 'mean': None, 'p50': None, 'p95': None, 'max': None}
    return {'kind': kind, 'count': int(v.size), 'mean': float(v.mean()), 'p50': float(np.percentile(v, 50)),
            'p95': float(np.percentile(v, 95)), 'max': float(v.max())}


def error_view(image: np.ndarray, depth: np.ndarray, gt: Optional[np.ndarray], emax: float = 10.0) -> np.ndarray:
    """|prediction - GT| at the GT pixels over the dimmed image (turbo: blue 0 m .. red >= emax m).

    On large images each lidar pixel is grown to a small square so the scan lines stay visible once the
    panel is scaled down; where squares touch, the larger error wins (the view never hides a bad pixel).
    """
    dim = (image.astype(np.float32) * 0.4).astype(np.uint8)
    if gt is None:
        return dim
    valid = gt > 0
    err = np.full(gt.shape, -1.0, np.float32)
    err[valid] = np.clip(np.abs(np.nan_to_num(depth[valid], nan=0.0) - gt[valid]) / emax, 0, 1)
    grow = max(image.shape[1] // 500, 0)
    if grow:
        err = cv2.dilate(err, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    v, u = np.nonzero(err >= 0)
    colors = cv2.applyColorMap(np.rint(err[v, u] * 255).astype(np.uint8).reshape(-1, 1), cv2.COLORMAP_TURBO)
    dim[v, u] = colors[:, 0, ::-1]
    return dim


def frame_figure(frame, depth: np.ndarray, saliency: Optional[np.ndarray], title: str,
                 max_depth: float = 80.0) -> np.ndarray:
    """2 x 2 RGB panel: image + radar, predicted depth, saliency overlay, error against the lidar GT."""
    img = frame.image
    H, W = img.shape[:2]
    radar = project_points(frame.radar_in_camera(), frame.K, H, W)
    radius = max(int(round(W / 300)), 1)
    tl = viz.label_tile(viz.overlay_points(img, radar.u, radar.v, radar.depth, max_depth, radius),
                f'image + radar ({len(radar)} pts)')
    tr = viz.label_tile(viz.colorize_depth(np.nan_to_num(depth, nan=0.0), max_depth), f'depth 0-{max_depth:g} m')
    bl = viz.label_tile(viz.saliency_overlay(img, saliency) if saliency is not None else (img * 0.4).astype(np.uint8),
                'saliency (Grad-CAM)' if saliency is not None else 'saliency: n/a')
    gt = frame.depth_sparse
    br = viz.label_tile(error_view(img, depth, gt), '|error| vs lidar, 0-10 m' if gt is not None else 'no lidar GT')
    panel = np.concatenate([np.concatenate([tl, tr], 1), np.concatenate([bl, br], 1)], 0)
    foot = np.zeros((max(H // 8, 14), panel.shape[1], 3), np.uint8)
    return np.concatenate([panel, viz.label_tile(foot, title)], 0)


class EvalReport:
    """Collects per-frame results; `finish` writes metrics.json, metrics.md and returns the summary."""

    def __init__(self, out, mode: str, bag, checkpoint, layout, images_in_bag: int, figures: int = 4,
                 max_depth: float = 80.0):
        self.out = Path(out)
        self.mode, self.bag, self.checkpoint, self.layout = mode, str(bag), str(checkpoint), layout
        self.images_in_bag = int(images_in_bag)
        self.acc = MetricAccumulator()
        self.records, self.latencies, self.figure_paths = [], [], []
        n = max(int(figures), 0)
        self._targets = sorted(set(np.linspace(0, max(images_in_bag - 1, 0), n).round().astype(int).tolist())) \
            if n and images_in_bag else []
        self.max_depth = float(max_depth)

    def add(self, ef, depth: np.ndarray, latency_ms: Optional[float] = None, extra: Optional[dict] = None) -> dict:
        f = ef.frame
        rec = {'name': f.name, 'stamp_ns': int(ef.stamp_ns), 'index': int(ef.index), 'radar_points': int(len(f.radar)),
               'radar_offset_s': ef.radar_offset_s, 'lidar_offset_s': ef.lidar_offset_s,
               'ego_motion_compensated': bool(ef.ego_motion), 'latency_ms': latency_ms}
        if ef.missing_radar_fields:
            rec['missing_radar_fields'] = list(ef.missing_radar_fields)
        if f.depth_sparse is not None:
            rec['gt_pixels'] = int((f.depth_sparse > 0).sum())
            m = self.acc.add(depth, f.depth_sparse, name=f.name)
            rec['metrics'] = {k: v for k, v in m.items() if k != 'name'}
        else:
            rec['gt_pixels'] = 0
            rec['metrics'] = None
            rec['no_gt'] = ef.gt_note
        rec.update(extra or {})
        self.records.append(rec)
        self.latencies.append(latency_ms)
        return rec

    def wants_figure(self, ef) -> bool:
        """True for the first frame at or after each evenly spaced target image index."""
        if self._targets and ef.index >= self._targets[0]:
            while self._targets and self._targets[0] <= ef.index:
                self._targets.pop(0)
            return True
        return False

    def figure(self, ef, depth, saliency=None) -> Path:
        title = f'{self.mode} | image {ef.index} | stamp {ef.stamp_ns / 1e9:.3f} s'
        path = self.out / 'figures' / f'frame-{ef.index:05d}.png'
        save_png(path, frame_figure(ef.frame, depth, saliency, title, self.max_depth))
        self.figure_paths.append(path)
        return path

    def finish(self, dropped: list, pairing: dict, latency_kind: str, extra: Optional[dict] = None,
               invalid_reason: str = '') -> dict:
        result = self.acc.result()
        valid = any(e['images'] > 0 for e in result['by_range'].values())
        if not valid and not invalid_reason:
            invalid_reason = ('no processed frame had lidar ground truth' if self.records
                              else 'no frame was processed')
        result.update({
            'valid': valid, 'invalid_reason': None if valid else invalid_reason, 'mode': self.mode,
            'bag': self.bag, 'checkpoint': self.checkpoint, 'layout': self.layout.describe(),
            'images_in_bag': self.images_in_bag, 'frames_processed': len(self.records),
            'frames': self.records, 'dropped_frames': dropped, 'pairing': pairing,
            'latency_ms': latency_stats(self.latencies, latency_kind),
            'figures': [str(p) for p in self.figure_paths]})
        result.update(extra or {})
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / 'metrics.json').write_text(json.dumps(result, indent=2, default=_json_default) + '\n')
        (self.out / 'metrics.md').write_text(self.markdown(result))
        return result

    def markdown(self, result: dict) -> str:
        lat = result['latency_ms']
        lines = [f'# Replay evaluation ({self.mode})', '', f'- bag: `{self.bag}`', f'- checkpoint: `{self.checkpoint}`',
                 f'- images in bag: {self.images_in_bag}, processed: {len(self.records)}, '
                 f'dropped: {len(result["dropped_frames"])}',
                 f'- ground truth: {self.layout.describe()["ground_truth"]}']
        if lat['count']:
            lines.append(f'- latency ({lat["kind"]}): mean {lat["mean"]:.1f} ms, p50 {lat["p50"]:.1f} ms, '
                         f'p95 {lat["p95"]:.1f} ms, max {lat["max"]:.1f} ms')
        split = split_line(result.get('node_diagnostics') or {})
        if split:
            lines.append(f'- in the node: {split}')
        lines.append('')
        if result['valid']:
            lines.append(markdown_table(result))
        else:
            lines.append(f'**No metrics: {result["invalid_reason"]}.**')
        return '\n'.join(lines) + '\n'


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
