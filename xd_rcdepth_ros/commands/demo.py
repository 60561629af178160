"""`xd-rcdepth demo`: the main job end to end on embedded data (what `make demo` runs).

    synthetic sequence -> rosbag2 -> the ROS 2 node live on a /clock replay, with the shipped checkpoint
    -> the paper's metrics against the bag's lidar, latency, PNG panels, and the node's outputs as a bag

Each stage is one of the project's own commands (synth, to-bag, replay-eval --live), so the demo is
also the recipe for a user's own bag: replace the first two stages with their recording. The node
runs as a user would run it: backend auto (the fastest installed path for the device: ONNX Runtime
on a CPU) and saliency at the node's default rate limit (saliency.max_rate); latency.md names the
backend the node chose and why (from its log). The PNG panels' saliency is computed apart, for the
frames pictured.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import time
from pathlib import Path

from xd_rcdepth_core.errors import UserError

from ..cli import run_command
from ..params import BY_NAME
from ..replay_eval.node_account import split_line
from ..resources import shipped_model

SCENE = 'scene-0001'
SALIENCY_RATE = BY_NAME['saliency.max_rate'].default   # the node as a user runs it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', default='out/demo', help='output folder (default out/demo; replaced)')
    parser.add_argument('--frames', type=int, default=12, help='camera frames, 12 Hz (default 12: one second)')
    parser.add_argument('--size', default='450x800', help='image HEIGHTxWIDTH (default 450x800)')
    parser.add_argument('--seed', type=int, default=0, help='random seed of the synthetic world (default 0)')
    parser.add_argument('--checkpoint', default=None,
                        help='checkpoint the node runs (default: the shipped models/xd_rcdepth_synthetic.pt)')
    parser.add_argument('--device', default='auto',
                        help='node device: auto (CUDA if present), cpu, cuda (default auto)')
    parser.add_argument('--figures', type=int, default=3, help='PNG panels of N frames (default 3)')
    parser.add_argument('--backend', default='auto',
                        help='node backend: auto (default: the fastest installed), torch, onnxruntime, tensorrt, '
                             'openvino')


def _command(argv: list) -> None:
    rc = run_command(argv)
    if rc:
        raise UserError(f'stage `xd-rcdepth {" ".join(argv)}` failed (exit {rc}); see its messages above')


def _stage(title: str, index: int) -> float:
    print(f'\n== demo {index}/3: {title}', flush=True)
    return time.monotonic()


def run(args) -> int:
    if args.frames < 2:
        raise UserError('--frames must be at least 2')
    checkpoint = Path(args.checkpoint) if args.checkpoint else shipped_model()
    if not checkpoint.is_file():
        raise UserError(f'--checkpoint {checkpoint} does not exist')
    out = Path(args.out)
    data, bag, evaluation = out / 'synthetic', out / 'input_bag', out
    t_all = time.monotonic()

    t = _stage(f'synthetic sequence ({args.frames} frames, {args.size}) -> {data}', 1)
    _command(['synth', '--out', str(data), '--frames', str(args.frames), '--size', args.size,
              '--seed', str(args.seed), '--overwrite', '--quiet'])
    times = {'synth_s': time.monotonic() - t}

    t = _stage(f'rosbag2 (MCAP) of the sequence -> {bag}', 2)
    _command(['to-bag', '--dataset', 'synthetic', '--root', str(data), '--scene', SCENE, '--out', str(bag),
              '--overwrite', '--quiet'])
    times['to_bag_s'] = time.monotonic() - t

    t = _stage(f'the node live on a /clock replay of the bag, checkpoint {checkpoint}', 3)
    _command(['replay-eval', str(bag), '--checkpoint', str(checkpoint), '--live', '--record-visuals',
              '--saliency-rate', f'{SALIENCY_RATE:g}', '--device', args.device, '--backend', args.backend,
              '--figures', str(args.figures),
              '--out', str(evaluation), '--overwrite'])
    times['replay_eval_s'] = time.monotonic() - t
    times['total_s'] = time.monotonic() - t_all

    result = json.loads((evaluation / 'metrics.json').read_text())
    backend = node_backend(evaluation / 'node.log')
    _write_latency(evaluation / 'latency.md', result, times, backend, args.backend)
    _print_summary(out, bag, result, times, backend)
    return 0


def node_backend(log_path: Path) -> dict | None:
    """The backend_info dict the node logged at activate ('... backend {...}'), or None."""
    try:
        text = log_path.read_text(errors='replace')
    except OSError:
        return None
    for match in re.finditer(r"backend (\{'backend'.*\})\s*$", text, re.MULTILINE):
        try:
            info = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            continue
        if isinstance(info, dict):
            return info
    return None


def describe_backend(info: dict | None, asked: str) -> str:
    if info is None:
        return f'backend {asked} (the node\'s choice is in node.log)'
    what = f"{info['backend']} {info.get('precision', '')} on {info.get('device', '?')}".strip()
    threads = info.get('threads')
    what += f', {threads} threads' if isinstance(threads, int) else ''
    return what + (f" - {info['reason']}" if info.get('reason') else f' (backend {asked})')


def _write_latency(path: Path, result: dict, times: dict, backend: dict | None = None, asked: str = 'auto') -> None:
    lat = result['latency_ms']
    name = backend['backend'] if backend else asked
    lines = ['# Demo latency', '', f'Per frame, {lat["kind"]}, on this machine.', '',
             f'Backend: {describe_backend(backend, asked)}.', '',
             '| backend | frames | mean ms | p50 ms | p95 ms | max ms |', '|---|---|---|---|---|---|']
    if lat['count']:
        lines.append(f'| {name} | {lat["count"]} | {lat["mean"]:.0f} | {lat["p50"]:.0f} | {lat["p95"]:.0f} | '
                     f'{lat["max"]:.0f} |')
    else:
        lines.append(f'| {name} | 0 | - | - | - | - |')
    split = split_line(result.get('node_diagnostics') or {})
    if split:
        lines += ['', f'In the node: {split}.']
    lines += ['', 'Per stage (wall clock, s): ' + ', '.join(f'{k[:-2]} {v:.1f}' for k, v in times.items()), '',
              'Per-frame values are in metrics.json (frames[].latency_ms). For the network alone, per backend and '
              'image size, run benchmarks/latency.py.', '']
    path.write_text('\n'.join(lines))


def _print_summary(out: Path, bag: Path, result: dict, times: dict, backend: dict | None = None) -> None:
    ob = Path(result['output_bag'])
    print(f'\n== demo done in {times["total_s"]:.0f} s; everything is in {out}/')
    print(f'the node ran {describe_backend(backend, "auto")}')
    for name, what in (('metrics.md', "the paper's metrics at 50/70/80 m (table) and latency"),
                       ('metrics.json', 'the same, per frame, in the schema of `xd-rcdepth eval`'),
                       ('latency.md', 'latency report'),
                       ('figures/', 'PNG panels: image + radar, depth, Grad-CAM saliency overlay, |error| vs lidar'),
                       (f'{ob.name}/', 'the node\'s outputs as a rosbag2: '
                        + ', '.join(result.get('output_topics', []))),
                       (f'{bag.name}/', 'the input bag (camera, CameraInfo, radar, lidar, /tf_static, ego poses)'),
                       ('node.log', 'the node\'s log')):
        print(f'  {out / name}  {what}')
    for fig in result.get('figures', [])[:1]:
        print(f'  e.g. {fig}')
    print('Open the bags:\n'
          f'  Foxglove: open {next(ob.glob("*.mcap"), ob)} (and {next(bag.glob("*.mcap"), bag)}) as local files\n'
          f'  RViz (full ROS 2 install): ros2 bag play -i {ob} -i {bag} --clock   then   '
          'rviz2 -d config/xd_rcdepth.rviz --ros-args -p use_sim_time:=true')
    print('The shipped checkpoint is trained on synthetic data only (models/README.md): it shows the pipeline '
          'works, it is not a model for real roads.')
