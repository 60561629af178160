"""The `xd-rcdepth` command: a table of subcommands, each one module with ``add_arguments(parser)``
and ``run(args) -> int``, imported only when it is the one asked for.

This module holds the machinery and the core's subcommands (no ROS); ``xd_rcdepth_ros.cli`` adds the
ROS layer's (to-bag, replay, replay-eval, demo) and is the installed `xd-rcdepth`. A researcher with
the core alone runs the same machinery as ``python -m xd_rcdepth_core.cli``.

Only the chosen subcommand's module is imported (the others appear in ``--help`` by their one-line
help), so `xd-rcdepth info` does not pay for the devkit or ROS, and command modules import what they
use at their top. A ``UserError`` (or FileNotFoundError / ValueError) is printed as one line with exit
status 2; a missing optional package names itself.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

from .errors import UserError


@dataclass(frozen=True)
class Command:
    name: str
    module: str          # exposes add_arguments(parser) and run(args) -> int
    help: str


CORE_COMMANDS = (
    Command('info', 'xd_rcdepth_core.commands.info', 'versions, devices, ROS availability; model sizes with --model'),
    Command('synth', 'xd_rcdepth_core.commands.synth',
            'generate a synthetic radar-camera dataset (native or nuScenes format)'),
    Command('prepare', 'xd_rcdepth_core.commands.prepare',
            'turn a dataset (nuScenes, ZJU-4DRadarCam, synthetic) into a training cache'),
    Command('show', 'xd_rcdepth_core.commands.show', 'picture of one cached sample (image, radar, GT)'),
    Command('train', 'xd_rcdepth_core.commands.train', 'train the CaFNet teacher, a student, or a distilled student'),
    Command('eval', 'xd_rcdepth_core.commands.eval', "evaluate a checkpoint by the paper's protocol (50/70/80 m)"),
    Command('saliency', 'xd_rcdepth_core.commands.saliency', 'Grad-CAM saliency pictures of a checkpoint'),
    Command('export', 'xd_rcdepth_core.commands.export', 'export a checkpoint to ONNX or TorchScript, verified'),
    Command('import-weights', 'xd_rcdepth_core.commands.import_weights',
            "turn the authors' published CaFNet / LiRCDepth checkpoints into ours"),
    Command('reproduce', 'xd_rcdepth_core.commands.reproduce',
            "the whole paper as one resumable plan (prepare, train, evaluate, time) and a report beside its numbers"),
)


def _chosen(argv: list, names) -> str | None:
    """The subcommand named in argv (the first argument that is not an option), if any."""
    first = next((a for a in argv if not a.startswith('-')), None)
    return first if first in names else None


def build_parser(commands=CORE_COMMANDS, argv=()) -> argparse.ArgumentParser:
    """The parser; only the subcommand named in ``argv`` gets its arguments (its module is imported)."""
    parser = argparse.ArgumentParser(
        prog='xd-rcdepth',
        description='XD-RCDepth radar-camera depth estimation: data, models, training, evaluation, ROS 2 bags.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    chosen = _chosen(list(argv), [c.name for c in commands])
    for command in commands:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        p.set_defaults(_module=command.module)
        if command.name == chosen:
            importlib.import_module(command.module).add_arguments(p)
    return parser


def run_command(argv: list, commands=CORE_COMMANDS) -> int:
    """Parse and run one subcommand; its errors propagate (main turns them into one line)."""
    args = build_parser(commands, argv).parse_args(argv)
    if not getattr(args, 'command', None):
        build_parser(commands).print_help()
        return 2
    return int(importlib.import_module(args._module).run(args) or 0)


def main(argv=None, commands=CORE_COMMANDS) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = _chosen(argv, [c.name for c in commands]) or 'xd-rcdepth'
    try:
        return run_command(argv, commands)
    except (UserError, FileNotFoundError, ValueError) as exc:
        print(f'xd-rcdepth {name}: error: {exc}', file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        hint = ' (ROS 2: run `make test` once, or source a ROS 2 install)' if exc.name and (
            exc.name.startswith('rclpy') or exc.name.endswith('_msgs')) else ''
        print(f'xd-rcdepth {name}: error: missing Python module {exc.name}{hint}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'xd-rcdepth {name}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
