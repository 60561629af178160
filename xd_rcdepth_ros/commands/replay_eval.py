"""`xd-rcdepth replay-eval`: the paper's metrics of a checkpoint on a rosbag2, offline or through the node.

    xd-rcdepth replay-eval BAG --checkpoint CKPT --out DIR [--live] [--figures N]
        [--camera-topic T --camera-info-topic T --radar-topic T --lidar-topic T] [--radar-fields rcs,vx,vy]
        [--sync-tolerance S] [--lidar-tolerance S] [--T-camera-radar tx,ty,tz,qw,qx,qy,qz] [--rate R]

Writes DIR/metrics.json (MetricAccumulator schema plus per-frame records, dropped frames, latency),
DIR/metrics.md, DIR/figures/*.png and DIR/output_bag (the depth as a bag for RViz/Foxglove).
Exit status 0 with metrics, 1 when the run worked but gave no metrics (no lidar ground truth), 2 on
bad input.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from xd_rcdepth_core.errors import UserError

from ..heap import keep_large_blocks
from ..replay_eval.options import add_bag_layout_arguments
from ..replay_eval.run import EvalOptions
from ..replay_eval.run import run as evaluate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', help='rosbag2 folder (mcap or sqlite3), e.g. one written by `xd-rcdepth to-bag`')
    parser.add_argument('--checkpoint', required=True, help='xd_rcdepth checkpoint (.pt)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--live', action='store_true',
                        help='run the ROS node as a subprocess and replay the bag to it over DDS with /clock '
                             '(default: DepthEstimator in this process)')
    parser.add_argument('--figures', type=int, default=4, help='PNG panels of N evenly spaced frames (default 4)')
    add_bag_layout_arguments(parser)
    parser.add_argument('--no-ego-motion', action='store_true',
                        help='project the lidar with the static extrinsics even when the bag has /ego_pose')
    parser.add_argument('--device', default='cpu', help='auto, cpu, cuda or cuda:N (default cpu)')
    parser.add_argument('--backend', default='auto',
                        help='inference backend for DepthEstimator and the node: auto (default: the fastest '
                             'installed for the device, e.g. onnxruntime on a CPU; the node logs its choice), '
                             'torch, onnxruntime, tensorrt or openvino')
    parser.add_argument('--max-depth', type=float, default=100.0,
                        help='depths above this are invalid (m; the node\'s default 100)')
    parser.add_argument('--input-size', help='network input HEIGHTxWIDTH (default: the image size)')
    parser.add_argument('--rate', type=float, default=1.0, help='--live replay rate (default 1.0; gated anyway)')
    parser.add_argument('--node-name', default='xd_rcdepth', help='--live node name (default xd_rcdepth)')
    parser.add_argument('--node-timeout', type=float, default=120.0,
                        help='--live: seconds for the node to start and subscribe (default 120)')
    parser.add_argument('--output-timeout', type=float, default=20.0,
                        help='--live: seconds to wait for the depth of an image before giving up on it '
                             '(reported as dropped, no_output; each image is waited for once; default 20)')
    parser.add_argument('--storage', default='mcap', help='output bag storage: mcap or sqlite3 (default mcap)')
    parser.add_argument('--overwrite', action='store_true', help='replace a previous evaluation in --out')
    parser.add_argument('--record-visuals', action='store_true',
                        help='--live: also record ~/output/depth_colored and ~/debug/saliency_overlay (one per '
                             'frame) for RViz/Foxglove; the latency then includes colouring and Grad-CAM')
    parser.add_argument('--saliency-rate', type=float, default=None, metavar='HZ',
                        help='--record-visuals: the node\'s saliency.max_rate (default: an overlay for every '
                             'frame; the node\'s own default is 2 Hz)')


def _input_size(text):
    if not text:
        return None
    m = re.match(r'^\s*(\d+)\s*[xX]\s*(\d+)\s*$', text)
    if not m:
        raise ValueError(f'--input-size must be HEIGHTxWIDTH, got {text!r}')
    return int(m.group(1)), int(m.group(2))


def _check(args) -> None:
    if not Path(args.checkpoint).is_file():
        raise UserError(f'--checkpoint {args.checkpoint} does not exist')
    for name in ('sync_tolerance', 'lidar_tolerance', 'rate', 'node_timeout', 'output_timeout', 'max_depth'):
        if not getattr(args, name) > 0:
            raise UserError(f'--{name.replace("_", "-")} must be > 0, got {getattr(args, name)}')
    if args.figures < 0 or args.radar_sweeps < 1:
        raise UserError('--figures must be >= 0 and --radar-sweeps >= 1')
    if args.storage.lower() not in ('mcap', 'sqlite3'):
        raise UserError(f'--storage {args.storage!r}: use mcap or sqlite3')
    if args.record_visuals and not args.live:
        raise UserError('--record-visuals records the node\'s outputs: add --live')
    if args.saliency_rate is not None and not (args.record_visuals and 0 < args.saliency_rate <= 100):
        raise UserError(f'--saliency-rate {args.saliency_rate:g}: it sets the node\'s saliency.max_rate with '
                        '--live --record-visuals, in (0, 100] Hz')


def run(args) -> int:
    _check(args)
    opts = EvalOptions(
        bag=args.bag, checkpoint=args.checkpoint, out=args.out, live=args.live, figures=args.figures,
        camera_topic=args.camera_topic, camera_info_topic=args.camera_info_topic, radar_topic=args.radar_topic,
        lidar_topic=args.lidar_topic, radar_fields=args.radar_fields, sync_tolerance=args.sync_tolerance,
        lidar_tolerance=args.lidar_tolerance, radar_sweeps=args.radar_sweeps, T_camera_radar=args.T_camera_radar,
        T_camera_lidar=args.T_camera_lidar, ego_motion=not args.no_ego_motion, device=args.device,
        backend=args.backend,
        max_depth=args.max_depth, input_size=_input_size(args.input_size), rate=args.rate,
        node_name=args.node_name, node_timeout=args.node_timeout, output_timeout=args.output_timeout,
        storage=args.storage.lower(), overwrite=args.overwrite, record_visuals=args.record_visuals,
        saliency_rate=args.saliency_rate)
    if args.live:   # this command's own process replays images and records depth: reuse those buffers
        print(keep_large_blocks())
    result = evaluate(opts)
    print((Path(args.out) / 'metrics.md').read_text())
    dropped = result['dropped_frames']
    print(f'{result["frames_processed"]} of {result["images_in_bag"]} images processed, {len(dropped)} dropped'
          + (f' ({", ".join(sorted({d["reason"] for d in dropped}))})' if dropped else '')
          + f'; results in {args.out}')
    if not result['valid']:
        print(f'xd-rcdepth replay-eval: no metrics: {result["invalid_reason"]}')
        return 1
    return 0
