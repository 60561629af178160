"""`xd-rcdepth reproduce`: the whole paper as one resumable plan, then one report beside the paper's numbers.

    xd-rcdepth reproduce --dataset nuscenes --root /data/nuscenes --out runs/paper [--teacher CKPT]
                         [--gpus N] [--nnodes M --rdzv-endpoint HOST:PORT [--follower]] [--dry-run]
    xd-rcdepth reproduce --scale tiny --out runs/tiny      (the same plan on synthetic data, CPU minutes)

Stages (xd_rcdepth_core/reproduce/plan.py): prepare; the teacher (CaFNet, then CaFNet_single) or the
given one; the student without distillation, with X-KD, D2-KD, both; the fusion ablation; LiRCDepth;
every model evaluated on the test split at 50 / 70 / 80 m and timed; report.md / report.json /
figures. A second invocation skips what finished and resumes what was killed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..data.errors import DatasetError
from ..data.nuscenes.files import check_dataroot
from ..errors import UserError
from ..models import read_checkpoint
from ..models.official import FORMATS
from ..reproduce import SCALE_BY_NAME, SCALES, Options, build_plan, execute, format_plan
from ..reproduce.plan import NUSCENES_VERSIONS
from ..reproduce.runs import Launch

TEACHER_FORMATS = sorted(f for f, model in FORMATS.items() if model == 'cafnet')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--dataset', default='nuscenes', choices=('nuscenes',), help="the paper's data set")
    parser.add_argument('--root', default=None,
                        help='nuScenes dataroot holding v1.0-trainval and v1.0-test (required with --scale full)')
    parser.add_argument('--out', required=True, help='output folder of the plan (a second run continues it)')
    parser.add_argument('--scale', default='full', metavar='{' + ','.join(SCALES) + '}',
                        help="full: the paper's budgets (default); tiny: the same plan on a small synthetic "
                             'nuScenes-format set in minutes on a CPU')
    parser.add_argument('--teacher', default=None, metavar='CKPT',
                        help="a trained CaFNet teacher instead of training one: our checkpoint, or the authors' "
                             'file (imported first)')
    parser.add_argument('--teacher-format', default=None, choices=TEACHER_FORMATS,
                        help="format of an authors' --teacher file (default: detected; ours, else cafnet-official)")
    parser.add_argument('--radarnet', action='store_true',
                        help="also RadarNet, the paper's first row (its two recipes; stage 2 alone is 450 epochs)")
    parser.add_argument('--gpus', type=int, default=None,
                        help='GPUs (training processes) per machine; more than one runs training under torchrun '
                             '(default: the GPUs torch sees)')
    parser.add_argument('--nnodes', type=int, default=1, help='machines of a torchrun run (default 1)')
    parser.add_argument('--rdzv-endpoint', default=None, metavar='HOST:PORT',
                        help="torchrun's rendezvous endpoint (several machines)")
    parser.add_argument('--rdzv-id', default='xd-rcdepth-reproduce', help="torchrun's rendezvous id prefix")
    parser.add_argument('--rdzv-backend', default='c10d', help="torchrun's rendezvous backend (default c10d)")
    parser.add_argument('--follower', action='store_true',
                        help='on every machine but the first of a several-machine run: join the training stages '
                             '(--out must be on a file system the machines share)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N (default auto)')
    parser.add_argument('--workers', type=int, default=None,
                        help='parallel workers of the preparation (default 8; --scale tiny 1)')
    parser.add_argument('--configs', default=None, metavar='DIR',
                        help='folder of the train_*.yaml recipes (default: the project\'s config/)')
    parser.add_argument('--dry-run', action='store_true', help='print the plan and its estimate, run nothing')


def find_configs(given) -> Path:
    here = Path(__file__).resolve().parents[2]
    candidates = [Path(given)] if given else [here / 'config', Path(sys.prefix) / 'share' / 'xd_rcdepth_ros' / 'config',
                                              Path.cwd() / 'config']
    for folder in candidates:
        if (folder / 'train_teacher.yaml').is_file():
            return folder
    raise UserError(f'no train_*.yaml recipes in {", ".join(map(str, candidates))}; pass --configs DIR')


def teacher_format(path: Path, given) -> str | None:
    """None when ``path`` is our CaFNet checkpoint (used as it is); else the authors' format to import."""
    if not path.is_file():
        raise UserError(f'--teacher {path}: no such file')
    try:
        ckpt = read_checkpoint(path)
    except ValueError:
        return given or 'cafnet-official'
    if ckpt['model_name'] != 'cafnet':
        raise UserError(f'--teacher {path} holds a {ckpt["model_name"]!r} model; the teacher is a CaFNet')
    if given:
        raise UserError(f'--teacher {path} is already our checkpoint: drop --teacher-format')
    return None


def options_from(args) -> Options:
    if args.scale not in SCALE_BY_NAME:
        raise UserError(f'--scale must be one of {", ".join(SCALES)}, got {args.scale!r}')
    scale = SCALE_BY_NAME[args.scale]
    root = Path(args.root).resolve() if args.root else None
    if scale.synth is None:
        if root is None:
            raise UserError('--root is required with --scale full: the nuScenes dataroot holding '
                            f'{NUSCENES_VERSIONS["trainval"]} and {NUSCENES_VERSIONS["test"]}')
        try:
            for version in NUSCENES_VERSIONS.values():
                check_dataroot(root, version)
        except DatasetError as exc:
            raise UserError(f'--root: {exc}') from None
    elif root is not None:
        raise UserError(f'--scale {scale.name} writes its own synthetic nuScenes-format set under --out; --root is '
                        'for --scale full')
    teacher = Path(args.teacher).resolve() if args.teacher else None
    fmt = teacher_format(teacher, args.teacher_format) if teacher else None
    if args.teacher_format and not teacher:
        raise UserError('--teacher-format needs --teacher')
    visible = torch.cuda.device_count() if torch.cuda.is_available() and args.device != 'cpu' else 0
    gpus = visible if args.gpus is None else args.gpus
    workers = scale.workers if args.workers is None else args.workers
    if gpus < 0 or args.nnodes < 1 or workers < 1:
        raise UserError('--gpus must be >= 0, --nnodes and --workers >= 1')
    if gpus > visible and not args.dry_run:
        raise UserError(f'--gpus {gpus}: torch sees {visible} GPU(s) here')
    if args.nnodes > 1 and not args.rdzv_endpoint:
        raise UserError('--nnodes > 1 needs --rdzv-endpoint HOST:PORT (torchrun\'s rendezvous on the first machine)')
    if args.follower and args.nnodes < 2:
        raise UserError('--follower is for the other machines of a run with --nnodes 2 or more')
    if args.device.startswith('cuda') and not torch.cuda.is_available() and not args.dry_run:
        raise UserError(f'--device {args.device}: torch sees no CUDA GPU here')
    launch = Launch(nproc_per_node=max(gpus, 1), nnodes=args.nnodes, rdzv_backend=args.rdzv_backend,
                    rdzv_endpoint=args.rdzv_endpoint, rdzv_id=args.rdzv_id)
    return Options(out=Path(args.out).resolve(), scale=scale, dataset=args.dataset, root=root, teacher=teacher,
                   teacher_format=fmt, launch=launch, radarnet=args.radarnet, follower=args.follower,
                   device=args.device, workers=workers, configs=find_configs(args.configs))


def run(args, stop_after: dict | None = None) -> int:
    """``stop_after`` {stage: step}: stop there as a kill would (tests)."""
    options = options_from(args)
    plan = build_plan(options)
    print(format_plan(plan, commands=args.dry_run), flush=True)
    if args.dry_run:
        return 0
    print(flush=True)
    execute(plan, log=lambda m: print(m, flush=True), stop_after=stop_after)
    return 0
