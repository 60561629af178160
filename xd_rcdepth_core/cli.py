"""The `xd-rcdepth` command.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
this file only registers them, so adding a command never touches the others. Errors that a user can
fix (bad arguments, missing files) are raised as ``UserError`` and printed as one line, exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help[, add-arguments function, run function]). The functions default to
# `add_arguments` and `run`. Command modules import heavy things (torch models, the devkit, ROS) inside
# `run`, so `xd-rcdepth info` stays fast and the core never loads ROS.
SUBCOMMANDS = {
    'info': ('xd_rcdepth_core.commands.info', 'versions, devices, ROS availability; model sizes with --model'),
    'synth': ('xd_rcdepth_core.synthetic.command', 'generate a synthetic radar-camera dataset (native or nuScenes format)'),
    'prepare': ('xd_rcdepth_core.data.commands', 'turn a dataset (nuScenes, ZJU-4DRadarCam, synthetic) into a training cache',
                'add_prepare_arguments', 'run_prepare'),
    'show': ('xd_rcdepth_core.data.commands', 'picture of one cached sample (image, radar, GT)',
             'add_show_arguments', 'run_show'),
    'train': ('xd_rcdepth_core.commands.train', 'train the CaFNet teacher, a student, or a distilled student'),
    'eval': ('xd_rcdepth_core.commands.eval', "evaluate a checkpoint by the paper's protocol (50/70/80 m)"),
    'saliency': ('xd_rcdepth_core.commands.saliency', 'Grad-CAM saliency pictures of a checkpoint'),
    'export': ('xd_rcdepth_core.commands.export', 'export a checkpoint to ONNX or TorchScript, verified'),
    'to-bag': ('xd_rcdepth_ros.commands.to_bag', 'dataset scene(s) -> Jazzy rosbag2 (camera, radar, lidar, TF, ego poses)'),
    'replay': ('xd_rcdepth_ros.commands.replay', 'replay a rosbag2 over DDS paced by bag time, with /clock'),
    'replay-eval': ('xd_rcdepth_ros.commands.replay_eval',
                    'paper metrics of a checkpoint on a rosbag2, offline or through the node (--live)'),
    'demo': ('xd_rcdepth_core.commands.demo', 'run the main job on the embedded synthetic data'),
}


class UserError(Exception):
    """A problem the user can fix; printed as one line without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='xd-rcdepth',
        description='XD-RCDepth radar-camera depth estimation: data, models, training, evaluation.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, (module_name, help_text, *functions) in SUBCOMMANDS.items():
        add_name, run_name = functions or ('add_arguments', 'run')
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name, _run=run_name)
        getattr(importlib.import_module(module_name), add_name)(p)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, 'command', None):
        parser.print_help()
        return 2
    run = getattr(importlib.import_module(args._module), args._run)
    try:
        return int(run(args) or 0)
    except (UserError, FileNotFoundError, ValueError) as exc:
        print(f'xd-rcdepth {args.command}: error: {exc}', file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        hint = ' (ROS 2: run `make test` once, or source a ROS 2 install)' if exc.name and (
            exc.name.startswith('rclpy') or exc.name.endswith('_msgs')) else ''
        print(f'xd-rcdepth {args.command}: error: missing Python module {exc.name}{hint}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'xd-rcdepth {args.command}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
