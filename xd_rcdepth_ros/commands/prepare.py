"""`xd-rcdepth prepare`: the core's command (nuScenes, ZJU-4DRadarCam, synthetic) plus recorded rosbag2
folders (`--dataset rosbag --root BAG [BAG ...]`), which need the ROS layer to read.

    xd-rcdepth prepare --dataset rosbag --root bags/drive1 bags/drive2 --out cache/mycar \
        [--val-bags drive2 | --val-fraction 0.2] [--lidar-sweeps 5] [--camera-topic ...] [--radar-fields ...]

Topics, radar fields and extrinsics are chosen with replay-eval's options and rules; see
bag_dataset/adapter.py for the ground truth and the splits.
"""
from __future__ import annotations

import argparse

from xd_rcdepth_core.commands import prepare as core
from xd_rcdepth_core.errors import UserError

from ..bag_dataset import RosbagAdapter, RosbagConfig
from ..bagfile.ego_motion import POSE_SOURCES
from ..replay_eval.bag_topics import parse_transform
from ..replay_eval.options import add_bag_layout_arguments

DATASETS = core.DATASETS + ('rosbag',)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    core.add_arguments(parser, DATASETS)
    bag = parser.add_argument_group('rosbag (recorded rosbag2 folders, MCAP or sqlite3; also uses --lidar-sweeps: '
                                    '+-N sweeps accumulated with the ego motion for the training target, default 0)')
    add_bag_layout_arguments(bag, radar_sweeps=False)
    bag.add_argument('--ego-motion', choices=POSE_SOURCES, default='auto',
                     help='where the vehicle motion comes from (auto: /ego_pose, then an Odometry topic, then /tf '
                          'into base_link)')
    bag.add_argument('--val-bags', nargs='+', default=(), metavar='NAME',
                     help='bag folder names whose frames form the val split')
    bag.add_argument('--val-fraction', type=float, default=0.0,
                     help='else: the last FRACTION of every bag\'s frames form val (time blocks, 1 s apart)')


def _config(args) -> RosbagConfig:
    T = {k: parse_transform(getattr(args, k), f'--{k.replace("_", "-")}').tolist()
         for k in ('T_camera_radar', 'T_camera_lidar') if getattr(args, k)}
    return RosbagConfig(camera_topic=args.camera_topic, camera_info_topic=args.camera_info_topic,
                        radar_topic=args.radar_topic, lidar_topic=args.lidar_topic, radar_fields=args.radar_fields,
                        sync_tolerance=args.sync_tolerance, lidar_tolerance=args.lidar_tolerance,
                        radar_sweeps=args.radar_sweeps or 1, lidar_sweeps=args.lidar_sweeps or 0,
                        ego_motion=args.ego_motion, val_bags=tuple(args.val_bags), val_fraction=args.val_fraction,
                        **T)


def run(args) -> int:
    if args.dataset != 'rosbag':
        return core.run(args)
    adapter = RosbagAdapter([str(r) for r in args.root], _config(args))
    for problem in adapter.problems:
        print(f'skipped bag {problem.bag}: {problem.reason}')
    if args.splits and not set(args.splits) <= set(adapter.splits()):
        raise UserError(f'--splits {args.splits}: the bags give {sorted(adapter.splits())}')
    code = core.run(args, adapter=adapter)
    return 1 if adapter.problems and code == 0 else code
