"""Depth metrics by the paper's protocol (CaFNet/LiRCDepth test.py, docs/reference.md Part A section 2).

Per image: valid pixels are those whose ground truth lies strictly inside (min_depth, max_depth);
predictions are clipped to [min_depth, max_depth] (inf -> max, NaN -> min). Each metric is computed on
that image's valid pixels; the dataset value is the mean over images. Images with no valid pixel are
excluded from the mean and counted (reported as `images_without_valid_gt`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import PAPER

METRIC_NAMES = ('mae', 'rmse', 'abs_rel', 'sq_rel', 'log10', 'rmse_log', 'silog', 'd1', 'd2', 'd3')
# Lower is better for errors, higher for the delta accuracies.
HIGHER_IS_BETTER = {'d1', 'd2', 'd3'}


def clip_prediction(pred: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    pred = np.asarray(pred, dtype=np.float64)
    pred = np.where(np.isnan(pred), min_depth, pred)
    return np.clip(np.where(np.isposinf(pred), max_depth, pred), min_depth, max_depth)


def valid_mask(gt: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    gt = np.asarray(gt, dtype=np.float64)
    return np.isfinite(gt) & (gt > min_depth) & (gt < max_depth)


def image_metrics(pred, gt, max_depth: float, min_depth: float = PAPER.depth.min_depth_eval):
    """Metrics of one image, or None when it has no valid ground-truth pixel."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f'prediction shape {pred.shape} differs from ground truth shape {gt.shape}')
    mask = valid_mask(gt, min_depth, max_depth)
    if not mask.any():
        return None
    g = gt[mask].astype(np.float64)
    p = clip_prediction(pred[mask], min_depth, max_depth)
    diff = g - p
    ratio = np.maximum(g / p, p / g)
    log_err = np.log(p) - np.log(g)
    return {
        'mae': float(np.mean(np.abs(diff))),
        'rmse': float(np.sqrt(np.mean(diff ** 2))),
        'abs_rel': float(np.mean(np.abs(diff) / g)),
        'sq_rel': float(np.mean(diff ** 2 / g)),
        'log10': float(np.mean(np.abs(np.log10(p) - np.log10(g)))),
        'rmse_log': float(np.sqrt(np.mean(log_err ** 2))),
        'silog': float(100.0 * np.sqrt(max(np.mean(log_err ** 2) - np.mean(log_err) ** 2, 0.0))),
        'd1': float(np.mean(ratio < 1.25)),
        'd2': float(np.mean(ratio < 1.25 ** 2)),
        'd3': float(np.mean(ratio < 1.25 ** 3)),
    }


@dataclass
class MetricAccumulator:
    """Per-image metrics at several ranges, averaged over images (the paper's protocol)."""

    ranges: tuple = PAPER.depth.eval_ranges
    min_depth: float = PAPER.depth.min_depth_eval
    _sums: dict = field(default_factory=dict)
    _counts: dict = field(default_factory=dict)
    _empty: dict = field(default_factory=dict)
    per_image: list = field(default_factory=list)

    def add(self, pred, gt, name: str = '') -> dict:
        """Add one image; returns its metrics per range (None where it had no valid pixel)."""
        record = {'name': name}
        for r in self.ranges:
            key = range_key(r)
            m = image_metrics(pred, gt, r, self.min_depth)
            record[key] = m
            if m is None:
                self._empty[key] = self._empty.get(key, 0) + 1
                continue
            sums = self._sums.setdefault(key, dict.fromkeys(METRIC_NAMES, 0.0))
            for k in METRIC_NAMES:
                sums[k] += m[k]
            self._counts[key] = self._counts.get(key, 0) + 1
        self.per_image.append(record)
        return record

    def result(self) -> dict:
        """{'by_range': {'50': {metric: mean, ..., 'images': n, 'images_without_valid_gt': k}}, 'images': N}."""
        by_range = {}
        for r in self.ranges:
            key = range_key(r)
            n = self._counts.get(key, 0)
            entry = {k: (self._sums[key][k] / n if n else None) for k in METRIC_NAMES}
            entry['images'] = n
            entry['images_without_valid_gt'] = self._empty.get(key, 0)
            by_range[key] = entry
        return {'by_range': by_range, 'images': len(self.per_image)}


def range_key(r: float) -> str:
    return str(int(r)) if float(r).is_integer() else str(r)


def markdown_table(result: dict, metrics=('mae', 'rmse', 'abs_rel', 'log10', 'd1', 'd2', 'd3')) -> str:
    """A table like the paper's: one row per evaluation range."""
    head = '| range | images | ' + ' | '.join(_LABELS.get(m, m) for m in metrics) + ' |'
    lines = [head, '|' + '---|' * (len(metrics) + 2)]
    for key, entry in result['by_range'].items():
        cells = ['n/a' if entry[m] is None else f'{entry[m]:.3f}' for m in metrics]
        lines.append(f'| {key} m | {entry["images"]} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


_LABELS = {'mae': 'MAE', 'rmse': 'RMSE', 'abs_rel': 'AbsRel', 'sq_rel': 'SqRel', 'log10': 'log10',
           'rmse_log': 'RMSElog', 'silog': 'SILog', 'd1': 'δ1', 'd2': 'δ2', 'd3': 'δ3'}
