"""`xd-rcdepth eval`: metrics of a checkpoint by the paper's protocol (50 / 70 / 80 m, single-sweep GT).

    xd-rcdepth eval --checkpoint CKPT --cache CACHE --split val [--out DIR] [--save-predictions]
                    [--figures N --teacher TEACHER_CKPT]
    xd-rcdepth eval --checkpoint CKPT --synthetic DIR [--scene NAME]

Writes DIR/metrics.json, DIR/metrics.md, DIR/per_image.jsonl (and predictions/, figures/).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..backends import BACKENDS
from ..data.cache import CacheIndex
from ..errors import UserError
from ..evaluate import EvalOptions, evaluate, frames_from_cache, frames_from_synthetic
from ..metrics import markdown_table
from ..pipeline import DepthEstimator


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the Frames come from: a prepared cache split, or the synthetic world's native storage."""
    parser.add_argument('--cache', default=None, help='a prepared cache folder')
    parser.add_argument('--split', default='val', help='cache split (default val)')
    parser.add_argument('--synthetic', default=None, metavar='DIR', help='a synthetic dataset (`xd-rcdepth synth`)')
    parser.add_argument('--scene', default=None, help='with --synthetic: one scene only')
    parser.add_argument('--limit', type=int, default=None, help='at most N frames')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')


def open_frames(args):
    if (args.cache is None) == (args.synthetic is None):
        raise UserError('give exactly one frame source: --cache CACHE [--split S] or --synthetic DIR')
    if args.limit is not None and args.limit < 1:
        raise UserError(f'--limit must be at least 1, got {args.limit}')
    try:
        if args.cache is not None:
            return frames_from_cache(args.cache, args.split), f'{Path(args.cache).name}/{args.split}'
        return frames_from_synthetic(args.synthetic, args.scene), f'synthetic:{Path(args.synthetic).name}'
    except KeyError as exc:
        raise UserError(str(exc).strip('"\'')) from None


def eval_multiple(args) -> int:
    """The evaluation crop the source's dataset uses (its cache records it); 32 for synthetic folders."""
    if args.cache is None:
        return 32
    return CacheIndex(args.cache).eval_multiple(args.split)


def estimator(path, args, precision='fp32', backend=None):
    return DepthEstimator.from_checkpoint(path, device=args.device, precision=precision,
                                          backend=backend or getattr(args, 'backend', 'auto'))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True, help='model checkpoint (weights + config)')
    add_source_arguments(parser)
    parser.add_argument('--out', default=None, help='output folder (default: eval-<split> beside the checkpoint)')
    parser.add_argument('--precision', default='fp32', choices=('fp32', 'fp16'))
    parser.add_argument('--backend', default='auto', choices=BACKENDS,
                        help='inference backend (default auto: the fastest installed for the device, e.g. '
                             'onnxruntime on a CPU; the choice is printed)')
    parser.add_argument('--gt', default='depth_sparse', choices=('depth_sparse', 'depth_accumulated', 'depth_interp',
                                                                 'depth_dense'),
                        help='ground truth (paper: depth_sparse, the single lidar sweep)')
    parser.add_argument('--ranges', type=float, nargs='+', default=None, help='max depths (default 50 70 80)')
    parser.add_argument('--no-crop', action='store_true',
                        help="keep the whole frame (default: the dataset's rule, recorded in the cache: nuScenes "
                             "and synthetic drop top rows to a multiple of 32, as image[4:]; ZJU keeps all rows)")
    parser.add_argument('--save-predictions', action='store_true', help='write predictions/*.png (uint16 depth x 256)')
    parser.add_argument('--figures', type=int, default=0, metavar='N', help='write figure panels of the first N frames')
    parser.add_argument('--teacher', default=None, help='teacher checkpoint whose saliency the figures show')
    parser.add_argument('--saliency-layer', default='decoder', choices=('image', 'radar', 'decoder'))
    parser.add_argument('--quiet', action='store_true', help='no progress bar')


def run(args) -> int:
    if args.figures < 0:
        raise UserError(f'--figures must be 0 or more, got {args.figures}')
    student = estimator(args.checkpoint, args, args.precision)
    # The teacher only gives the figures its Grad-CAM maps: a torch path (no export of 60 M parameters).
    teacher = estimator(args.teacher, args, backend='torch') if args.teacher else None
    frames, source = open_frames(args)
    default_out = Path(args.checkpoint).resolve().parent / f'eval-{args.split if args.cache else "synthetic"}'
    out = Path(args.out) if args.out else default_out
    options = EvalOptions(gt=args.gt, multiple=0 if args.no_crop else eval_multiple(args), limit=args.limit,
                          save_predictions=args.save_predictions, figures=args.figures,
                          saliency_layer=args.saliency_layer, progress=not args.quiet,
                          **({'ranges': tuple(args.ranges)} if args.ranges else {}))
    info = student.backend_info
    print(f"backend {info['backend']} ({info.get('reason', 'as asked')})")
    meta = {'checkpoint': str(args.checkpoint), 'model': student.model.model_name, 'source': source,
            'device': str(student.device), 'precision': args.precision, 'backend': info['backend']}
    result = evaluate(student, frames, options, out, teacher=teacher, meta=meta)
    if result['images'] == 0:
        raise UserError(f'no frames to evaluate in {source}')
    print(markdown_table(result))
    print(f'{result["images"]} frames of {source}; metrics in {out / "metrics.json"}')
    return 0
