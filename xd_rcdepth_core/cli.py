"""The `xd-rcdepth` command.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
this file only registers them, so adding a command never touches the others. Errors that a user can
fix (bad arguments, missing files) are raised as ``UserError`` and printed as one line, exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Modules are imported lazily: `xd-rcdepth info` must not pay for torch
# models or the devkit.
SUBCOMMANDS = {
    'info': ('xd_rcdepth_core.commands.info', 'versions, devices, ROS availability; model sizes with --model'),
    'synth': ('xd_rcdepth_core.synthetic.command', 'generate a synthetic radar-camera driving sequence'),
    'demo': ('xd_rcdepth_core.commands.demo', 'run the main job on the embedded synthetic data'),
}


class UserError(Exception):
    """A problem the user can fix; printed as one line without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='xd-rcdepth',
        description='XD-RCDepth radar-camera depth estimation: data, models, training, evaluation.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, 'command', None):
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except (UserError, FileNotFoundError, ValueError) as exc:
        print(f'xd-rcdepth {args.command}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'xd-rcdepth {args.command}: interrupted', file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
