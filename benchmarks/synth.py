"""Time per stage of the synthetic world generator on one CPU core.

    python benchmarks/synth.py [--size 900x1600] [--frames 5] [--seed 0] [--out out/benchmarks/synth.json]

Stages per camera frame: scene step (all boxes at time t), camera render (raster + shading), one lidar
sweep, one radar sweep, GT accumulation (+-N cached sweeps into the camera), interpolation, and the
whole Frame as generate_sequence makes it in steady state (lidar sweeps shared with the previous frame
come from the cache: at 12 Hz camera / 20 Hz lidar about 1.7 new sweeps per frame). Median over frames.
"""
from __future__ import annotations

import os

# One core: set before numpy / OpenCV load their thread pools.
for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS', 'NUMEXPR_NUM_THREADS'):
    os.environ[_var] = '1'

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from xd_rcdepth_core.geometry import invert_transform, transform_points
from xd_rcdepth_core.groundtruth import accumulate_depth, interpolate_depth
from xd_rcdepth_core.synthetic.lidar import lidar_sweep
from xd_rcdepth_core.synthetic.radar_sim import radar_sweep
from xd_rcdepth_core.synthetic.sequence import GroundTruthSettings, make_frame
from xd_rcdepth_core.synthetic.world import CAMERA, LIDAR, RADAR, World


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', default='900x1600')
    parser.add_argument('--frames', type=int, default=5)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--accumulate', type=int, default=4)
    parser.add_argument('--out', default='out/benchmarks/synth.json')
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    H, W = (int(s) for s in args.size.lower().split('x'))

    world, t_world = _timed(lambda: World(args.seed))
    K = world.settings.camera.intrinsics(H, W)
    gt = GroundTruthSettings(accumulate=args.accumulate)
    # warm-up frame: fills the sweep cache and the lazily built tables (noise tile, ray grids)
    make_frame(world, world.sensor_time(CAMERA, 0), H, W, gt=gt)
    stages = {k: [] for k in ('scene step', 'camera render', 'lidar sweep', 'radar sweep', 'GT accumulate',
                              'GT interpolate', 'frame total (steady state)')}
    for i in range(1, args.frames + 1):
        t = world.sensor_time(CAMERA, i)
        _, dt = _timed(lambda: world.scene.boxes_at(t))
        stages['scene step'].append(dt)
        cam, dt = _timed(lambda: world.render_camera(t, K, H, W))
        stages['camera render'].append(dt)
        t_lidar = world.sensor_time(LIDAR, world.sensor_index(LIDAR, t))
        _, dt = _timed(lambda: lidar_sweep(world.scene, t_lidar, world.T_ego_sensor[LIDAR],
                                           world.rng(LIDAR, t_lidar), world.settings.lidar))
        stages['lidar sweep'].append(dt)
        t_radar = world.sensor_time(RADAR, world.sensor_index(RADAR, t))
        _, dt = _timed(lambda: radar_sweep(world.scene, t_radar, world.T_ego_sensor[RADAR], world.rng(RADAR, t_radar),
                                           world.settings.radar))
        stages['radar sweep'].append(dt)
        k = world.sensor_index(LIDAR, t)
        window = range(k - gt.accumulate, k + gt.accumulate + 1)
        sweeps = [world.lidar_sweep(world.sensor_time(LIDAR, j)) for j in window]
        T_camera_world = invert_transform(cam.T_world_camera)

        def accumulate():
            sets = []
            for s in sweeps:
                keep = s.owner < 0
                keep[~keep] = ~world.scene.moving[s.owner[~keep]]
                sets.append(transform_points(T_camera_world @ s.T_world_lidar, s.xyz()[keep]))
            return accumulate_depth(sets, K, H, W)
        acc, dt = _timed(accumulate)
        stages['GT accumulate'].append(dt)
        _, dt = _timed(lambda: interpolate_depth(acc))
        stages['GT interpolate'].append(dt)
    # Whole frames as generate_sequence makes them, on a fresh world whose cache holds only the
    # previous frame's sweeps (the loop above has filled this world's cache).
    steady = World(args.seed)
    _, cold = _timed(lambda: make_frame(steady, steady.sensor_time(CAMERA, 0), H, W, gt=gt))
    for i in range(1, args.frames + 1):
        _, dt = _timed(lambda: make_frame(steady, steady.sensor_time(CAMERA, i), H, W, gt=gt))
        stages['frame total (steady state)'].append(dt)

    result = {name: float(np.median(v)) for name, v in stages.items()}
    cpu = platform.processor() or platform.machine()
    print(f'synthetic world, {H}x{W}, {args.frames} frames (median), 1 thread, {cpu}')
    print(f'{"stage":34s} {"ms":>9s}')
    print(f'{"world build (once per scene)":34s} {t_world * 1e3:9.1f}')
    print(f'{f"first frame ({2 * gt.accumulate + 1} new sweeps)":34s} {cold * 1e3:9.1f}')
    for name, value in result.items():
        print(f'{name:34s} {value * 1e3:9.1f}')
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(size=[H, W], frames=args.frames, seed=args.seed, accumulate=args.accumulate,
                                   threads=1, machine=platform.machine(), python=platform.python_version(),
                                   world_build_s=t_world, first_frame_s=cold, median_s=result), indent=2) + '\n')
    print(f'wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
