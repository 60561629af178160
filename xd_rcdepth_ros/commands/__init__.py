"""The ROS layer's `xd-rcdepth` subcommands, one module each with ``add_arguments(parser)`` and
``run(args) -> int`` (registered in ``xd_rcdepth_ros.cli.ROS_COMMANDS``): to-bag, replay,
replay-eval, demo, and prepare (the core's plus recorded rosbag2 folders).
"""
