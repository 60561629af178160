"""`xd-rcdepth` subcommands of the ROS layer (to-bag, replay, replay-eval), registered in xd_rcdepth_core.cli.

Each module exposes add_arguments(parser) and run(args) -> int and imports nothing heavy at its top
level (no rclpy, rosbags or torch), so `xd-rcdepth --help` stays fast.
"""
