"""A rosbag2 -> the paper's metrics (`xd-rcdepth replay-eval`), offline or through the live node.

    bag_topics.py   which topics and extrinsics an evaluation uses (options > sidecar > /tf_static)
    bag_frames.py   bag -> evaluation frames: pairing by stamp (the node's rule), lidar ground truth
    lidar_truth.py  single-sweep lidar depth in the camera, ego-motion compensated
    node_process.py the node as a subprocess, with its log
    node_account.py the node's last /diagnostics (its own latency split) and the line the reports print
    report.py       metrics.json, the Markdown table, latency statistics, PNG panels
    run.py          the evaluation itself: offline (DepthEstimator in-process) and live (the node over DDS)
"""
