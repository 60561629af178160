"""The installed `xd-rcdepth` command: the core's subcommands plus the ROS layer's.

The core never imports this package (a test checks), so the command that knows both lives here.
"""
from __future__ import annotations

import sys

from xd_rcdepth_core.cli import CORE_COMMANDS, Command
from xd_rcdepth_core.cli import main as _main
from xd_rcdepth_core.cli import run_command as _run_command

ROS_COMMANDS = (
    # replaces the core's prepare: the same datasets plus recorded rosbag2 folders
    Command('prepare', 'xd_rcdepth_ros.commands.prepare',
            'turn a dataset (nuScenes, ZJU-4DRadarCam, synthetic, your rosbag2 recordings) into a training cache'),
    Command('to-bag', 'xd_rcdepth_ros.commands.to_bag',
            'dataset scene(s) -> Jazzy rosbag2 (camera, radar, lidar, TF, ego poses)'),
    Command('replay', 'xd_rcdepth_ros.commands.replay', 'replay a rosbag2 over DDS paced by bag time, with /clock'),
    Command('replay-eval', 'xd_rcdepth_ros.commands.replay_eval',
            'paper metrics of a checkpoint on a rosbag2, offline or through the node (--live)'),
    Command('demo', 'xd_rcdepth_ros.commands.demo', 'run the main job on the embedded synthetic data'),
)
_OVERRIDES = {c.name: c for c in ROS_COMMANDS}
COMMANDS = tuple(_OVERRIDES.get(c.name, c) for c in CORE_COMMANDS) + tuple(
    c for c in ROS_COMMANDS if c.name not in {k.name for k in CORE_COMMANDS})


def run_command(argv: list) -> int:
    return _run_command(argv, COMMANDS)


def main(argv=None) -> int:
    return _main(argv, COMMANDS)


if __name__ == '__main__':
    sys.exit(main())
