"""`xd-rcdepth prepare`: a dataset -> a training cache (the work is in data/prepare.py).

    xd-rcdepth prepare --dataset {nuscenes,zju,synthetic} --root DIR [--version v1.0-trainval]
                       --out CACHE [--workers N] [--splits train val] [--limit N] [--overwrite] ...
"""
from __future__ import annotations

import argparse

from ..data.adapters import DATASETS
from ..data.prepare import prepare
from ..data.zju import ZJU_CROP_ROWS
from ..errors import UserError


def add_arguments(parser: argparse.ArgumentParser, datasets=DATASETS) -> None:
    parser.add_argument('--dataset', required=True, choices=datasets)
    parser.add_argument('--root', required=True, nargs='+',
                        help='dataset folder (nuScenes dataroot, ZJU data folder, or a synthetic world written '
                             'by `xd-rcdepth synth`); several rosbag2 folders with --dataset rosbag')
    parser.add_argument('--version', default=None,
                        help='nuScenes table folder: v1.0-trainval (default), v1.0-test, v1.0-mini')
    parser.add_argument('--out', required=True,
                        help='cache folder to write (re-running resumes; other splits already there are kept)')
    parser.add_argument('--overwrite', action='store_true',
                        help='delete the samples of the splits prepared now and redo them (needed when they '
                             'were made with other settings)')
    parser.add_argument('--workers', type=int, default=1, help='parallel worker processes (default 1)')
    parser.add_argument('--splits', nargs='+', default=None, help='only these splits (default all)')
    parser.add_argument('--limit', type=int, default=None, help='only the first N samples of each split')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    nus = parser.add_argument_group('nuScenes')
    nus.add_argument('--radars', nargs='+', default=None,
                     help='radar channels (default RADAR_FRONT); the first present is the reference frame')
    nus.add_argument('--radar-sweeps', type=int, default=None, help='radar sweeps per radar (default 1)')
    nus.add_argument('--lidar-sweeps', type=int, default=None,
                     help='+-N lidar sweeps for the accumulated GT (default 80, as the references)')
    nus.add_argument('--mover-rule', choices=('category', 'moving'), default=None,
                     help='which boxes are masked in the accumulated GT (see data/nuscenes/movers.py)')
    nus.add_argument('--no-accumulate', action='store_true',
                     help='single-sweep GT only (no accumulated / interpolated maps)')
    nus.add_argument('--keep-last-keyframe', action='store_true',
                     help='also prepare the last keyframe of each scene (the references skip it)')
    syn = parser.add_argument_group('synthetic')
    syn.add_argument('--val-scenes', type=int, default=0,
                     help='the last N scenes form the val split (default 0: all train)')
    zju = parser.add_argument_group('ZJU-4DRadarCam')
    zju.add_argument('--zju-crop', action='store_true',
                     help='crop to rows 240-540 as RadarCam-Depth does (default: full 1280 x 720)')


def prepare_options(args) -> dict:
    """Adapter config fields from the parsed arguments (only those given)."""
    if args.dataset == 'nuscenes':
        opts = {'radars': tuple(args.radars) if args.radars else None, 'radar_sweeps': args.radar_sweeps,
                'lidar_sweeps': args.lidar_sweeps, 'mover_rule': args.mover_rule,
                'accumulate': False if args.no_accumulate else None,
                'skip_last_keyframe': False if args.keep_last_keyframe else None}
        return {k: v for k, v in opts.items() if v is not None}
    if args.dataset == 'zju':
        return {'crop_rows': ZJU_CROP_ROWS} if args.zju_crop else {}
    if args.dataset == 'synthetic':
        return {'val_scenes': args.val_scenes} if args.val_scenes else {}
    return {}


def run(args, adapter=None) -> int:
    """Prepare; ``adapter`` an already opened dataset adapter (the ROS layer's rosbag adapter)."""
    if adapter is None and len(args.root) != 1:
        raise UserError(f'--dataset {args.dataset} takes one --root folder, got {len(args.root)}')
    root = args.root[0] if len(args.root) == 1 else ','.join(args.root)
    summary = prepare(args.dataset, root, args.version, args.out, args.workers, splits=args.splits,
                      limit=args.limit, options=prepare_options(args), progress=not args.no_progress,
                      overwrite=args.overwrite, adapter=adapter)
    written = sum(c['written'] + c['resumed'] for c in summary['splits'].values())
    return 1 if summary['interrupted'] or (written == 0 and summary['skipped']) else 0
