"""`xd-rcdepth import-weights`: the authors' published CaFNet / LiRCDepth nuScenes checkpoints as ours.

    xd-rcdepth import-weights --format cafnet-official model-120000-best_mae_1.76278 --out cafnet.pt
    xd-rcdepth import-weights --format lircdepth-official model-1170000-best_... --out lircdepth.pt

The file is read as plain tensors only (never runs code), every tensor is renamed into our model
(models/official.py says how; the unused ImageNet fc heads of CaFNet are the only ones dropped), and
the checkpoint records the authors' input conventions (nuScenes CAM_FRONT, ImageNet normalisation,
radar depth/RCS/vx/vy) and the file's sha256. The result is an ordinary checkpoint: the teacher of
`train --recipe distill`, or a model for `eval`, `export`, the node and replay-eval. Any mismatch is one
error and no file is written.
"""
from __future__ import annotations

import argparse

from ..errors import UserError
from ..models.official import FORMATS, import_official


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--format', required=True, choices=sorted(FORMATS),
                        help="whose layout FILE has: the authors' CaFNet (also LiRCDepth's CaFNet_single teacher) "
                             'or their LiRCDepth student')
    parser.add_argument('file', metavar='FILE', help="the authors' checkpoint (torch file, as they publish it)")
    parser.add_argument('--out', required=True, metavar='CKPT', help='our checkpoint to write')


def run(args) -> int:
    try:
        path, report = import_official(args.format, args.file, args.out)
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    dropped = f", {len(report.dropped)} dropped ({', '.join(report.dropped)})" if report.dropped else ''
    print(f'found: {report.variant}')
    print(f'{report.tensors} tensors: {report.mapped} loaded into our {report.model_name}{dropped}'
          + (f'; trained {report.global_step} steps' if report.global_step is not None else ''))
    for warning in report.warnings:
        print(f'warning: {warning}')
    print(f'wrote {path}: inputs as the authors\' (nuScenes CAM_FRONT fx 1266.4 px at 1600x900, ImageNet '
          'normalisation, radar depth/rcs/vx/vy)')
    return 0
