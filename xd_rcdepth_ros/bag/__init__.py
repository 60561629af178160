"""rosbag2 tools: dataset -> bag, bag replay over DDS with /clock, recording, and replay evaluation.

    schema.py     topic names, frame ids, message types, QoS offered in the metadata, storage plugins
    sidecar.py    <bag>/extrinsics.yaml: the static extrinsics, K and topic names a bag was written with
    write.py      BagWriter: messages (rclpy, via convert.py) -> rosbag2 with rosbags
    sources.py    what a source yields: camera / point cloud / pose samples and the scene calibration
    synthetic_source.py, nuscenes_source.py   dataset scenes as time-ordered sensor samples
    to_bag.py     one scene -> one bag (the `xd-rcdepth to-bag` work)
    reader.py     opening a bag with one clear error per problem; topic/type checks; raw CDR helpers
    layout.py     which topics and extrinsics an evaluation uses (options > sidecar > /tf_static)
    frames.py     a paired image + radar -> Frame, by the node's rule
    read.py       bag -> evaluation frames (pairing by stamp, single-sweep lidar ground truth)
    replay.py     BagPlayer: raw CDR publishing paced by bag time, /clock
    record.py     Recorder: raw subscriptions -> rosbag2
    report.py     metrics.json, Markdown table, latency statistics, PNG panels
    evaluate.py   replay evaluation, offline (DepthEstimator in-process) and live (the node over DDS)

Nothing is imported here, so `import xd_rcdepth_ros.bag.schema` stays cheap for the CLI.
"""
