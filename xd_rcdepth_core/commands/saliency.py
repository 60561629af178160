"""`xd-rcdepth saliency`: Grad-CAM maps of a model (and optionally its teacher) at the 1/16 X-KD taps.

    xd-rcdepth saliency --checkpoint CKPT (--cache CACHE --split val | --synthetic DIR) --out DIR
                        [--teacher TEACHER_CKPT] [--layers image radar decoder] [--limit 8]

Per frame DIR/<name>.png: image and prediction, then one heat map per layer (student row; teacher
row with --teacher). DIR/saliency.json: per layer the mean cosine similarity of student and teacher
maps as displayed (min-max scaled, full resolution; X-KD maximises the same cosine on raw
maps at 1/16), when a teacher is given.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..evaluate import crop_for_eval, safe_name
from ..viz import colorize_depth, label_tile, saliency_overlay, save_png
from .eval import add_source_arguments, estimator, open_frames


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True, help='model checkpoint (weights + config)')
    add_source_arguments(parser)
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--teacher', default=None, help='a teacher checkpoint to show (and compare) alongside')
    parser.add_argument('--layers', nargs='+', default=['image', 'radar', 'decoder'],
                        choices=('image', 'radar', 'decoder'), help='which 1/16 taps (default all three)')
    parser.set_defaults(limit=8)


def _row(frame, result, layers, who, max_depth=80.0):
    tiles = [label_tile(frame.image.copy(), f'{who}: {frame.name}'),
             label_tile(colorize_depth(result.depth, max_depth), f'{who} depth')]
    tiles += [label_tile(saliency_overlay(frame.image, result.saliency[k]), f'{who} Grad-CAM {k}') for k in layers]
    return np.concatenate(tiles, axis=1)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def run(args) -> int:
    student = estimator(args.checkpoint, args)
    teacher = estimator(args.teacher, args) if args.teacher else None
    frames, source = open_frames(args)
    out = Path(args.out)
    layers = tuple(dict.fromkeys(args.layers))
    cosines = {k: [] for k in layers}
    count = 0
    for i, frame in enumerate(itertools.islice(frames, args.limit)):
        frame = crop_for_eval(frame)
        s = student.predict(frame, saliency_layers=layers)
        rows = [_row(frame, s, layers, 'student')]
        if teacher is not None:
            t = teacher.predict(frame, saliency_layers=layers)
            rows.append(_row(frame, t, layers, 'teacher'))
            for k in layers:
                cosines[k].append(_cosine(s.saliency[k], t.saliency[k]))
        save_png(out / f'{safe_name(frame.name, i)}.png', np.concatenate(rows, axis=0))
        count += 1
    if count == 0:
        raise UserError(f'no frames in {source}')
    summary = {'checkpoint': str(args.checkpoint), 'teacher': args.teacher, 'source': source, 'frames': count,
               'layers': list(layers),
               'cosine_student_teacher': {k: float(np.mean(v)) for k, v in cosines.items() if v} or None}
    (out / 'saliency.json').write_text(json.dumps(summary, indent=2) + '\n')
    print(f'wrote {count} saliency panel(s) of {source} to {out}')
    return 0
