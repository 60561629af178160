"""The thin ROS 2 layer of XD-RCDepth. It imports xd_rcdepth_core; the core never imports it.

    node.py, params.py, diagnostics.py, topics.py   the lifecycle node, its parameter table,
                              /diagnostics, its topics (node_docs.py turns the tables into docs/node.md)
    to_frame.py               messages -> Frame (the node and replay-eval alike)
    convert.py, sync.py, extrinsics.py   message <-> numpy; image / radar pairing; radar->camera transform
    bagfile/                  rosbag2 files: schema, reading, writing, the extrinsics sidecar
    dataset_to_bag/           a dataset scene -> a rosbag2 (`xd-rcdepth to-bag`)
    playback/                 a stand-in for `ros2 bag play / record`: replay with /clock, recording
    replay_eval/              a bag -> the paper's metrics, offline or through the node (`replay-eval`)
    cli.py, commands/         the installed `xd-rcdepth` command and the ROS layer's subcommands
    resources.py              the shipped checkpoint and Fast DDS profile
    heap.py                   glibc heap settings that reuse image-sized buffers (node, replay commands)

Importing this package (or ``cli``) loads no rclpy: the ROS modules import it themselves.
"""
