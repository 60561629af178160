"""rosbag2 files (MCAP or sqlite3) through ``rosbags``: what every bag tool here reads and writes.

    schema.py     topic names, frame ids, message types, offered QoS, storage plugins
    reader.py     opening a bag with one clear error per problem; topic and type checks; raw CDR
    writer.py     BagWriter: rclpy messages -> a rosbag2
    sidecar.py    <bag>/extrinsics.yaml: the static extrinsics, K and topics a bag was written with
"""
