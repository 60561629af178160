"""`xd-rcdepth info`: what this installation has (versions, compute devices, ROS), as text or JSON."""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import platform

from ..models.summary import model_summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--json', action='store_true', help='print one JSON object instead of text')
    parser.add_argument('--model', default=None,
                        help='also report a model\'s parameters and multiply-accumulates '
                             '(xd_rcdepth, cafnet, lircdepth)')
    parser.add_argument('--height', type=int, default=896, help='input height for --model MACs (default 896)')
    parser.add_argument('--width', type=int, default=1600, help='input width for --model MACs (default 1600)')
    parser.add_argument('--fusion', default=None, help='student fusion variant for --model xd_rcdepth')


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_info() -> dict:
    import torch
    devices = ['cpu']
    cuda = torch.cuda.is_available()
    if cuda:
        devices += [f'cuda:{i} ({torch.cuda.get_device_name(i)})' for i in range(torch.cuda.device_count())]
    # find_spec does not import rclpy: this command must work (and stay fast) without ROS.
    ros = importlib.util.find_spec('rclpy') is not None
    return {
        'xd_rcdepth': _version('xd_rcdepth_ros'),
        'python': platform.python_version(),
        'platform': platform.platform(),
        'versions': {name: _version(name) for name in (
            'torch', 'torchvision', 'numpy', 'opencv-python-headless', 'nuscenes-devkit', 'rosbags',
            'ros-jazzy-rclpy', 'onnxruntime')},
        'devices': devices,
        'cuda_available': cuda,
        'torch_threads': torch.get_num_threads(),
        'ros_available': ros,
        'ros_distro': __import__('os').environ.get('ROS_DISTRO'),
    }


def run(args) -> int:
    info = environment_info()
    if args.model:
        config = {} if args.fusion is None else {'fusion': args.fusion}
        info['model'] = model_summary(args.model, args.height, args.width, **config)
    if args.json:
        print(json.dumps(info if not args.model else {**info['model'], 'environment': info}, indent=2))
        return 0
    print(f"xd_rcdepth {info['xd_rcdepth']}  python {info['python']}  ({info['platform']})")
    for name, ver in info['versions'].items():
        print(f'  {name:24s} {ver or "not installed"}')
    print(f"devices: {', '.join(info['devices'])}  (torch threads {info['torch_threads']})")
    print(f"ROS 2: {'available' if info['ros_available'] else 'not installed'}"
          f"{' (' + info['ros_distro'] + ')' if info['ros_distro'] else ''}")
    if args.model:
        m = info['model']
        print(f"model {args.model}: {m['params_total'] / 1e6:.3f} M parameters, "
              f"{m['gmacs']:.2f} GMACs at {args.height}x{args.width}")
        if m['params_unused_in_reference']:
            print(f"  {m['params_reference_comparable'] / 1e6:.3f} M as the paper counts it "
                  f"(+{m['params_unused_in_reference']:,} values the authors' count includes that are not trained "
                  f"here; the model's docstring says which)")
        for part, n in m['params_by_part'].items():
            print(f'  {part:20s} {n / 1e6:8.3f} M')
    return 0
