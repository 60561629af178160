"""Bag tools at nuScenes image size: to-bag writing, reading evaluation frames, DDS replay delivery.

    python benchmarks/replay.py [--size 900x1600] [--frames 12] [--rates 1 5 10] [--storage mcap]
                                [--out out/benchmarks/replay.json]

1. to-bag of a synthetic scene (native-rate radar and lidar): seconds, bag size, messages.
2. read.BagFrames over the bag (decode, pair, project the lidar GT; no inference): frames per second.
3. BagPlayer replay of the camera, camera_info and radar topics at each rate, received by a best-effort
   keep-last-5 subscriber (the node's sensor-data QoS) in another context of this process, with the
   project's Fast DDS profile: images delivered, worst lateness behind the bag schedule, wall time.
Prints a table and writes JSON. DDS stays on loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST).
"""
from __future__ import annotations

import os

os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_DOMAIN_ID', str(20 + os.getpid() % 80))

import argparse
import json
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from xd_rcdepth_core.commands import synth as command
from xd_rcdepth_ros.bagfile.reader import message_class, reading
from xd_rcdepth_ros.dataset_to_bag.scene import write_scene
from xd_rcdepth_ros.dataset_to_bag.synthetic import SyntheticSceneSource
from xd_rcdepth_ros.playback.player import BagPlayer
from xd_rcdepth_ros.playback.session import RosSession
from xd_rcdepth_ros.replay_eval.bag_frames import BagFrames
from xd_rcdepth_ros.replay_eval.bag_topics import resolve_layout
from xd_rcdepth_ros.resources import apply_fastdds_profile
from xd_rcdepth_ros.to_frame import parse_field_map


def _synthetic(root: Path, frames: int, size: str) -> None:
    command.run(argparse.Namespace(out=str(root), scenes=1, frames=frames, size=size, seed=0, accumulate=0,
                                   visualise=0, png=False, overwrite=False, quiet=True))


def _replay(bag: Path, rate: float, topics: list) -> dict:
    from rclpy.qos import qos_profile_sensor_data
    got = []
    lock = threading.Lock()
    listener = RosSession('xd_rcdepth_bench_listener')
    image = topics[0]
    listener.node.create_subscription(message_class('sensor_msgs/msg/Image'), image,
                                      lambda raw: (lock.acquire(), got.append(len(raw)), lock.release()),
                                      qos_profile_sensor_data, raw=True)
    try:
        with RosSession('xd_rcdepth_bench_player') as session:
            player = BagPlayer(session.node, bag, topics=topics, rate=rate)
            player.wait_for_subscribers([image], timeout=30)
            time.sleep(0.5)
            stats = player.play()
            player.close()
            time.sleep(0.5)
    finally:
        listener.close()
    sent = stats.counts[image]
    return {'rate': rate, 'images_sent': sent, 'images_received': len(got), 'loss': 1 - len(got) / max(sent, 1),
            'wall_s': stats.wall_s, 'bag_s': stats.bag_s, 'max_late_ms': stats.max_late_ms,
            'image_bytes': got[0] if got else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', default='900x1600')
    parser.add_argument('--frames', type=int, default=12)
    parser.add_argument('--rates', type=float, nargs='+', default=[1.0, 5.0, 10.0])
    parser.add_argument('--storage', default='mcap', choices=('mcap', 'sqlite3'))
    parser.add_argument('--out', default='out/benchmarks/replay.json')
    args = parser.parse_args(argv)
    print(apply_fastdds_profile())
    work = Path(tempfile.mkdtemp(prefix='xd_rcdepth_bench_replay_'))
    try:
        t0 = time.perf_counter()
        _synthetic(work / 'data', args.frames, args.size)
        t_synth = time.perf_counter() - t0
        bag = work / 'bag'
        t0 = time.perf_counter()
        summary = write_scene(SyntheticSceneSource(work / 'data', 'scene-0001'), bag, storage=args.storage,
                              progress=False)
        t_write = time.perf_counter() - t0
        size_mb = sum(p.stat().st_size for p in bag.iterdir()) / 1e6
        with reading(bag) as reader:
            layout = resolve_layout(reader, bag)
        t0 = time.perf_counter()
        n = sum(1 for _ in BagFrames(bag, layout, parse_field_map(None)))
        t_read = time.perf_counter() - t0
        topics = [layout.image_topic, layout.camera_info_topic, layout.radar_topic]
        replays = [_replay(bag, rate, topics) for rate in args.rates]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {'size': args.size, 'frames': args.frames, 'storage': args.storage, 'synthetic_s': t_synth,
              'to_bag': {'seconds': t_write, 'bag_mb': size_mb, 'messages': summary.counts},
              'read_frames': {'frames': n, 'seconds': t_read, 'fps': n / t_read if t_read else None},
              'replay': replays, 'machine': {'python': platform.python_version(), 'cpus': os.cpu_count()}}
    print(f'to-bag: {sum(summary.counts.values())} messages, {size_mb:.1f} MB in {t_write:.2f} s ({args.storage})')
    print(f'read evaluation frames: {n} in {t_read:.2f} s ({result["read_frames"]["fps"]:.1f} frames/s)')
    print('| rate | images sent | received | loss | wall s | worst lateness ms |')
    print('|---|---|---|---|---|---|')
    for r in replays:
        print(f'| {r["rate"]:g}x | {r["images_sent"]} | {r["images_received"]} | {100 * r["loss"]:.0f} % | '
              f'{r["wall_s"]:.2f} | {r["max_late_ms"]:.1f} |')
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + '\n')
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
