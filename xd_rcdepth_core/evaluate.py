"""Evaluation by the paper's protocol: DepthEstimator over Frames, metrics at 50 / 70 / 80 m.

Any iterable of Frames evaluates through one loop (a prepared cache, the synthetic world's native
storage, later rosbags). Protocol (docs/reference.md Part A 2, formulas in metrics.py): full resolution,
top rows dropped so the height is a multiple of 32 (nuScenes 900 -> 896, the references'
``image[4:]``); GT = single-sweep lidar (``depth_sparse``); per-image metrics averaged over images.

Outputs in ``out_dir``: metrics.json (``by_range`` -> "50"/"70"/"80" -> metric names, plus what was
evaluated), metrics.md (a table like the paper's), optional predictions/<name>.png (uint16 depth x
256, 0 = none) and figures/<name>.png (image, radar, prediction, GT, error, student and teacher
saliency side by side).
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import cv2
import numpy as np

from .config import PAPER
from .data.cache import CacheIndex
from .data.images import write_depth_png
from .frame import DEPTH_MAPS, Frame
from .geometry import project_points
from .metrics import METRIC_NAMES, MetricAccumulator, markdown_table, range_key
from .synthetic.storage import read_sequence
from .viz import colorize_depth, label_tile, overlay_points, saliency_overlay, save_png, write_atomic

ERROR_SCALE_M = 5.0     # error maps saturate at 5 m


@dataclass(frozen=True)
class EvalOptions:
    ranges: tuple = PAPER.depth.eval_ranges     # 50, 70, 80 m (docs/paper.md Setup)
    gt: str = 'depth_sparse'                    # single-sweep lidar (docs/reference.md 1.4, 2)
    multiple: int = 32                          # drop top rows / right columns to a multiple; 0 = keep all
    limit: Optional[int] = None                 # at most this many frames
    save_predictions: bool = False
    figures: int = 0                            # panels of the first N frames
    saliency_layer: str = 'decoder'             # which 1/16 tap the figures show
    progress: bool = True


def crop_for_eval(frame: Frame, multiple: int = 32) -> Frame:
    """Drop the top rows and right columns so both sides are multiples of `multiple` (K follows)."""
    if multiple <= 0:
        return frame
    top, h = frame.height % multiple, frame.height - frame.height % multiple
    w = frame.width - frame.width % multiple
    if h == 0 or w == 0:
        raise ValueError(f'frame {frame.name!r} ({frame.height} x {frame.width}) is smaller than {multiple} px')
    if top == 0 and w == frame.width:
        return frame
    K = frame.K.copy()
    K[1, 2] -= top
    maps = {m: getattr(frame, m)[top:, :w].copy() for m in DEPTH_MAPS if getattr(frame, m) is not None}
    return frame.replace(image=np.ascontiguousarray(frame.image[top:, :w]), K=K, **maps)


def combine_records(records: Iterable[dict], ranges=PAPER.depth.eval_ranges) -> dict:
    """MetricAccumulator.result() of per-image records gathered from several processes."""
    records = list(records)
    by_range = {}
    for r in ranges:
        key = range_key(r)
        valid = [rec[key] for rec in records if rec.get(key) is not None]
        entry = {m: (float(np.mean([v[m] for v in valid])) if valid else None) for m in METRIC_NAMES}
        entry['images'] = len(valid)
        entry['images_without_valid_gt'] = len(records) - len(valid)
        by_range[key] = entry
    return {'by_range': by_range, 'images': len(records)}


def safe_name(name: str, index: int) -> str:
    stem = ''.join(c if c.isalnum() or c in '-_.' else '_' for c in (name or ''))
    return stem or f'frame-{index:06d}'


def evaluate(estimator, frames: Iterable[Frame], options: EvalOptions = EvalOptions(), out_dir=None,
             teacher=None, meta: Optional[dict] = None, gather: Optional[Callable] = None) -> dict:
    """Evaluate `estimator` (a DepthEstimator) on `frames`; returns the metrics dict (also written to
    out_dir when given). `teacher`: an optional DepthEstimator whose saliency the figures show.
    `gather`: combines the per-image records of several processes (distributed validation)."""
    from tqdm import tqdm
    acc = MetricAccumulator(ranges=tuple(options.ranges))
    out = Path(out_dir) if out_dir is not None else None
    frames = itertools.islice(frames, options.limit) if options.limit is not None else frames
    for i, frame in enumerate(tqdm(frames, disable=not options.progress, desc='eval', unit='frame',
                                   total=options.limit)):
        frame = crop_for_eval(frame, options.multiple)
        gt = getattr(frame, options.gt)
        if gt is None:
            raise ValueError(f'frame {frame.name!r} has no {options.gt} ground truth to evaluate against')
        pred = estimator.predict(frame).depth
        acc.add(pred, gt, frame.name)
        stem = safe_name(frame.name, i)
        if out is not None and options.save_predictions:
            write_depth_png(out / 'predictions' / f'{stem}.png', pred)
        if out is not None and i < options.figures:
            save_png(out / 'figures' / f'{stem}.png', figure_panel(frame, pred, gt, estimator, teacher,
                                                                   options.saliency_layer, max(options.ranges)))
    records = gather(acc.per_image) if gather is not None else acc.per_image
    result = combine_records(records, options.ranges) if gather is not None else acc.result()
    result.update(meta or {}, gt=options.gt, ranges=[float(r) for r in options.ranges])
    if out is not None:
        write_report(out, result, records)
    return result


def write_report(out_dir, result: dict, per_image=None) -> None:
    out = Path(out_dir)
    write_atomic(out / 'metrics.json', (json.dumps(result, indent=2) + '\n').encode())
    write_atomic(out / 'metrics.md', (markdown_table(result) + '\n').encode())
    if per_image is not None:
        lines = ''.join(json.dumps(r) + '\n' for r in per_image)
        write_atomic(out / 'per_image.jsonl', lines.encode())


# ----------------------------------------------------------------------------- figures


def _saliency_tile(estimator, frame, layer, who):
    if estimator is None:
        return label_tile(np.zeros_like(frame.image), f'{who} saliency: n/a')
    cam = estimator.predict(frame, saliency_layers=(layer,)).saliency[layer]
    return label_tile(saliency_overlay(frame.image, cam), f'{who} Grad-CAM ({layer}, 1/16)')


def figure_panel(frame: Frame, pred: np.ndarray, gt: np.ndarray, student, teacher, layer: str,
                 max_depth: float) -> np.ndarray:
    """2 x 4 tiles: image | radar | prediction | GT / error | student saliency | teacher saliency |
    interpolated GT."""
    img = frame.image
    dim = (img.astype(np.float32) * 0.45).astype(np.uint8)
    r = max(int(round(frame.width / 400)), 1)
    radar = project_points(frame.radar_in_camera(), frame.K, frame.height, frame.width)
    vv, uu = np.nonzero(gt > 0)
    valid = np.isfinite(pred[vv, uu])
    err = np.abs(np.nan_to_num(pred[vv, uu]) - gt[vv, uu])
    err_rgb = cv2.applyColorMap(np.clip(err / ERROR_SCALE_M * 255, 0, 255).astype(np.uint8)[:, None],
                                cv2.COLORMAP_INFERNO)[:, 0, ::-1]
    error = np.zeros_like(img)
    for dy in range(-(r // 2), r // 2 + 1):
        for dx in range(-(r // 2), r // 2 + 1):
            y, x = np.clip(vv + dy, 0, frame.height - 1), np.clip(uu + dx, 0, frame.width - 1)
            error[y[valid], x[valid]] = err_rgb[valid]
    tiles = [
        label_tile(img.copy(), frame.name or 'image'),
        label_tile(overlay_points(dim, radar.u, radar.v, radar.depth, max_depth, r + 1), f'radar ({len(radar)} pts)'),
        label_tile(colorize_depth(pred, max_depth), f'prediction (0-{max_depth:g} m)'),
        label_tile(overlay_points(dim, uu, vv, gt[vv, uu], max_depth, r // 2), 'GT (single sweep)'),
        label_tile(error, f'|error| at GT (0-{ERROR_SCALE_M:g} m)'),
        _saliency_tile(student, frame, layer, 'student'),
        _saliency_tile(teacher, frame, layer, 'teacher'),
        label_tile(colorize_depth(frame.depth_interp, max_depth) if frame.depth_interp is not None
               else np.zeros_like(img), 'interpolated GT'),
    ]
    return np.concatenate([np.concatenate(tiles[:4], axis=1), np.concatenate(tiles[4:], axis=1)], axis=0)


# ----------------------------------------------------------------------------- frame sources


def frames_from_cache(cache, split: str) -> Iterable[Frame]:
    index = CacheIndex(cache)
    names = index.names(split)
    return (index.frame(split, i) for i in range(len(names)))


def frames_from_synthetic(root, scene: Optional[str] = None) -> Iterable[Frame]:
    return read_sequence(root, scene)
