"""`xd-rcdepth replay`: publish a rosbag2 over DDS, paced by bag time, with /clock.

    xd-rcdepth replay BAG [--rate R] [--loop] [--topics T ...] [--start-delay S] [--no-clock]

The stand-in for `ros2 bag play BAG --clock` on pip-only ROS 2 (no ros2cli); on a full ROS install
`ros2 bag play --clock` plays the same bags. Raw CDR bytes are published with the QoS the bag offers;
nodes should run with use_sim_time:=true. Topics whose message package is not installed (tf2_msgs
over pip) are skipped with a note. Ctrl-C stops.
"""
from __future__ import annotations

import argparse

from xd_rcdepth_core.errors import UserError

from ..bagfile.reader import check_bag_path
from ..heap import keep_large_blocks
from ..playback.player import BagPlayer
from ..playback.session import RosSession


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', help='rosbag2 folder (mcap or sqlite3)')
    parser.add_argument('--rate', type=float, default=1.0, help='playback speed factor (default 1.0)')
    parser.add_argument('--loop', action='store_true', help='start again at the end (Ctrl-C stops)')
    parser.add_argument('--topics', nargs='+', metavar='TOPIC', help='only these topics (default: all)')
    parser.add_argument('--start-delay', type=float, default=1.0,
                        help='seconds between creating the publishers and the first message, for discovery '
                             '(default 1.0)')
    parser.add_argument('--no-clock', action='store_true', help='do not publish /clock')
    parser.add_argument('--clock-rate', type=float, default=40.0, help='/clock messages per second while '
                                                                       'waiting between messages (default 40)')


def run(args) -> int:
    if not args.rate > 0 or args.start_delay < 0 or not args.clock_rate > 0:
        raise UserError('--rate and --clock-rate must be > 0 and --start-delay >= 0')
    import time

    check_bag_path(args.bag)
    # This command's own process: reuse image-sized buffers (each message read from the bag is a fresh
    # multi-megabyte block; measured: page faults 91k -> 20k in 20 s, kernel time 2.2 -> 1.4 % of a core).
    print(keep_large_blocks())
    session = RosSession('xd_rcdepth_replay')
    print(session.profile_note)
    player = None
    try:
        player = BagPlayer(session.node, args.bag, topics=args.topics, rate=args.rate, loop=args.loop,
                           clock=not args.no_clock, clock_rate=args.clock_rate)
        print(f'replaying {args.bag} at {args.rate}x: {", ".join(player.topics)}'
              + (' + /clock' if not args.no_clock else ''))
        end = time.monotonic() + args.start_delay
        while time.monotonic() < end:
            player.publish_clock(player.start_ns)
            time.sleep(0.05)
        stats = player.play()
    except KeyboardInterrupt:
        stats = player.stats if player is not None else None
        print('interrupted')
    finally:
        if player is not None:
            player.close()
        session.close()
    if stats is not None:
        print(stats.table())
    return 0
