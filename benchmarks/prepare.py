"""Benchmark of dataset preparation on a synthetic nuScenes-format set (prints a table, writes JSON).

1. Writes a synthetic scene in the nuScenes format (``data.nuscenes.writer``): 17 keyframes at
   1600 x 900 (so the middle keyframe has a full +-80-sweep annotated window) and every 20 Hz lidar
   sweep around them.
2. Times the accumulated-GT step for the middle keyframe at +-80 sweeps on one core (BLAS threads
   pinned to 1), the devkit single-sweep projection and the interpolation separately, in wall-clock
   and in CPU seconds (``time.process_time``: all threads of this process). Goal: < 2 s on one core,
   judged on CPU time -- on a loaded host the wall clock also counts the time other processes held
   the core, which says nothing about this code.
3. Runs ``prepare`` (the whole cache pipeline, +-80 sweeps) with 1 and with 2 workers and reports
   samples/s and samples/s per worker.

    .venv/bin/python benchmarks/prepare.py [--quick] [--out out/benchmarks]

--quick: 6 keyframes at 450 x 800 and +-20 sweeps (a smoke run, not the reported numbers).
"""
from __future__ import annotations

import os

# One core for the timed step: set before numpy is imported anywhere.
for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ.setdefault(_var, '1')

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from xd_rcdepth_core.data.nuscenes.adapter import NuScenesAdapter, NuScenesConfig
from xd_rcdepth_core.data.nuscenes.lidar import accumulated_depth, single_sweep_projection
from xd_rcdepth_core.data.nuscenes.poses import sensor_pose
from xd_rcdepth_core.data.nuscenes.writer import write_nuscenes
from xd_rcdepth_core.data.prepare import prepare
from xd_rcdepth_core.geometry import sparse_depth_map
from xd_rcdepth_core.groundtruth import interpolate_depth

GOAL_CPU_SECONDS = 2.0


def _best_of(fn, repeat):
    """(best wall seconds, best CPU seconds, result) of `repeat` calls."""
    wall, cpu, result = [], [], None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return min(wall), min(cpu), result


def time_accumulation(root: Path, sweeps: int, repeat: int) -> dict:
    """Seconds of each GT step for the middle keyframe (best of `repeat`)."""
    adapter = NuScenesAdapter(root, 'v1.0-mini', NuScenesConfig(lidar_sweeps=sweeps))
    nusc = adapter.nusc
    samples = adapter.scene_samples(nusc.scene[0])
    sample = nusc.get('sample', samples[len(samples) // 2])
    cam_sd = nusc.get('sample_data', sample['data']['CAM_FRONT'])
    lidar_sd = nusc.get('sample_data', sample['data']['LIDAR_TOP'])
    K = np.asarray(nusc.get('calibrated_sensor', cam_sd['calibrated_sensor_token'])['camera_intrinsic'])
    H, W = cam_sd['height'], cam_sd['width']
    T_world_camera = sensor_pose(nusc, cam_sd)
    t_single, c_single, proj = _best_of(
        lambda: single_sweep_projection(nusc, lidar_sd['token'], cam_sd['token'], H, W), repeat)
    sparse = sparse_depth_map(proj, H, W)
    t_acc, c_acc, (acc, stats) = _best_of(lambda: accumulated_depth(
        nusc, lidar_sd, sparse, T_world_camera, K, H, W, root, sweeps, adapter.movers), repeat)
    t_interp, c_interp, _ = _best_of(lambda: interpolate_depth(acc), repeat)
    t_frame, c_frame, _ = _best_of(lambda: adapter.frame(sample['token']), 1)
    return {'sweeps_each_side': sweeps, 'sweeps_used': stats.sweeps_used, 'image': [H, W],
            'points_projected': stats.points_projected, 'removed_in_boxes': stats.removed_in_boxes,
            'removed_hidden': stats.removed_hidden, 'accumulated_pixels': int(np.count_nonzero(acc)),
            'single_sweep_pixels': int(np.count_nonzero(sparse)),
            'seconds_single_sweep': t_single, 'seconds_accumulated': t_acc, 'seconds_interpolation': t_interp,
            'seconds_whole_frame': t_frame,
            'cpu_seconds_single_sweep': c_single, 'cpu_seconds_accumulated': c_acc,
            'cpu_seconds_interpolation': c_interp, 'cpu_seconds_whole_frame': c_frame,
            'goal_met': c_acc < GOAL_CPU_SECONDS}


def time_prepare(root: Path, out: Path, workers: int, sweeps: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    summary = prepare('nuscenes', root, 'v1.0-mini', out, workers, options={'lidar_sweeps': sweeps},
                      progress=False, log=lambda *_: None)
    written = sum(c['written'] for c in summary['splits'].values())
    cpu = summary['cpu_seconds_per_sample']['mean']
    return {'workers': workers, 'samples': written, 'seconds': summary['seconds'],
            'samples_per_s': summary['samples_per_s'], 'samples_per_s_per_worker': summary['samples_per_s'] / workers,
            'cpu_seconds_per_sample': cpu, 'samples_per_cpu_s': 1.0 / cpu, 'load_average_1min': os.getloadavg()[0],
            'skipped': len(summary['skipped'])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='out/benchmarks', help='folder for prepare.json')
    parser.add_argument('--quick', action='store_true', help='small smoke run (not the reported numbers)')
    parser.add_argument('--keep', default=None, help='write the synthetic set here and keep it (reused if present)')
    args = parser.parse_args(argv)
    warnings.simplefilter('ignore')
    sweeps, samples, size = (20, 6, (450, 800)) if args.quick else (80, 17, (900, 1600))
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix='xd_rcdepth_bench_'))
    try:
        t0 = time.perf_counter()
        files = None
        if not (work / 'nuscenes' / 'v1.0-mini' / 'scene.json').is_file():
            # No camera sweeps: preparation never reads them and they would take most of the writing time.
            files = write_nuscenes(work / 'nuscenes', seed=0, samples_per_scene=samples, height=size[0],
                                   width=size[1], accumulate=sweeps, camera_sweeps=False).files
        write_s = time.perf_counter() - t0
        acc = time_accumulation(work / 'nuscenes', sweeps, repeat=1 if args.quick else 3)
        runs = [time_prepare(work / 'nuscenes', work / f'cache{w}', w, sweeps) for w in (1, 2)]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result = {'benchmark': 'prepare', 'quick': args.quick, 'python': platform.python_version(),
              'cpu_count': os.cpu_count(), 'platform': platform.platform(),
              'synthetic_set': {'keyframes': samples, 'image': list(size), 'files': files,
                                'seconds_to_write': write_s if files else None},
              'accumulated_gt': acc, 'prepare': runs, 'goal_accumulated_cpu_seconds': GOAL_CPU_SECONDS,
              'load_average_1min': os.getloadavg()[0]}
    print(f"synthetic nuScenes set: {samples} keyframes {size[1]}x{size[0]}, "
          + (f"{files} files, written in {write_s:.1f} s" if files else f"reused from {work}"))
    print(f"\naccumulated GT, one keyframe, +-{sweeps} sweeps ({acc['sweeps_used']} used), one core:")
    print(f"  {'step':32s} {'wall s':>8s} {'CPU s':>8s}")
    for key, label in (('single_sweep', 'single sweep (devkit)'),
                       ('accumulated', f'accumulate +-{sweeps} (goal < 2 CPU s)'),
                       ('interpolation', 'interpolation'), ('whole_frame', 'whole Frame')):
        print(f"  {label:32s} {acc['seconds_' + key]:8.3f} {acc['cpu_seconds_' + key]:8.3f}")
    print(f"  goal (accumulation < {GOAL_CPU_SECONDS:g} s of CPU on one core): "
          f"{'met' if acc['goal_met'] else 'MISSED'} ({acc['cpu_seconds_accumulated']:.2f} CPU s; wall "
          f"{acc['seconds_accumulated']:.2f} s at load average {result['load_average_1min']:.2f})"
          + (' -- full-size run' if not args.quick else ' -- quick run: not the goal setting'))
    print(f"  pixels: single {acc['single_sweep_pixels']}, accumulated {acc['accumulated_pixels']}; "
          f"points removed in boxes {acc['removed_in_boxes']}, hidden {acc['removed_hidden']}")
    print(f"\nprepare (+-{sweeps} sweeps, {runs[0]['samples']} samples):")
    print(f"  {'workers':>7s} {'seconds':>8s} {'samples/s':>10s} {'per worker':>11s} {'CPU s/sample':>13s} "
          f"{'load avg':>9s}")
    for r in runs:
        print(f"  {r['workers']:7d} {r['seconds']:8.2f} {r['samples_per_s']:10.3f} "
              f"{r['samples_per_s_per_worker']:11.3f} {r['cpu_seconds_per_sample']:13.2f} "
              f"{r['load_average_1min']:9.2f}")
    print(f"  ({os.cpu_count()} CPUs; the load average shows other processes sharing them: a worker's own cost "
          f"is its CPU s/sample)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ('prepare_quick.json' if args.quick else 'prepare.json')
    path.write_text(json.dumps(result, indent=2))
    print(f'\nwrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
