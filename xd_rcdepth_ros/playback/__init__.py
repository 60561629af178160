"""A stand-in for `ros2 bag play` and `ros2 bag record` (the CLI is not installable from PyPI).

    player.py     BagPlayer: raw CDR publishing paced by bag time, with /clock
    recorder.py   Recorder: raw subscriptions -> a rosbag2
    session.py    RosSession: one rclpy context and executor for the tools, under the project's DDS profile
"""
