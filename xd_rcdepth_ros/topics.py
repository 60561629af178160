"""Every topic of the xd_rcdepth node, in one table: for the node, its docs page and the launch file's remaps.

Private names (`~/...`) are the node's own; change them by remapping (the launch file has an argument
for each). No ROS imports: `python -m xd_rcdepth_ros.node_docs` renders this table without rclpy.
"""
from __future__ import annotations

from dataclasses import dataclass

SUBSCRIBED = 'subscribed'
PUBLISHED = 'published'

INPUT_IMAGE = '~/input/image'
INPUT_IMAGE_COMPRESSED = '~/input/image/compressed'
INPUT_CAMERA_INFO = '~/input/camera_info'
INPUT_RADAR_POINTS = '~/input/radar_points'
OUTPUT_DEPTH = '~/output/depth'
OUTPUT_DEPTH_CAMERA_INFO = '~/output/depth/camera_info'
OUTPUT_DEPTH_COLORED = '~/output/depth_colored'
OUTPUT_POINTS = '~/output/points'
DEBUG_SALIENCY_OVERLAY = '~/debug/saliency_overlay'
DIAGNOSTICS = '/diagnostics'
TF_STATIC = '/tf_static'


@dataclass(frozen=True)
class Topic:
    name: str
    type: str              # ROS interface: package/msg/Name
    direction: str         # SUBSCRIBED or PUBLISHED
    description: str


TOPICS = (
    Topic(INPUT_IMAGE, 'sensor_msgs/msg/Image', SUBSCRIBED,
          'Camera image: rgb8, bgr8, rgba8, bgra8, mono8, rgb16, bgr16, mono16, yuv422_yuy2 / yuyv, uyvy / '
          'yuv422, bayer_rggb8 / bggr8 / gbrg8 / grbg8. With `compressed_image: false` (default).'),
    Topic(INPUT_IMAGE_COMPRESSED, 'sensor_msgs/msg/CompressedImage', SUBSCRIBED,
          'Compressed camera image, instead of ~/input/image when `compressed_image: true`.'),
    Topic(INPUT_CAMERA_INFO, 'sensor_msgs/msg/CameraInfo', SUBSCRIBED,
          'Camera intrinsics; the size must match the image.'),
    Topic(INPUT_RADAR_POINTS, 'sensor_msgs/msg/PointCloud2', SUBSCRIBED,
          'Radar sweep: x, y, z and optional rcs, vx, vy (field names: `radar_fields.*`; a missing field '
          'becomes zeros, with one warning).'),
    Topic(OUTPUT_DEPTH, 'sensor_msgs/msg/Image', PUBLISHED,
          'Metric depth, 32FC1 metres, NaN = invalid (REP 118); header = the input image\'s header.'),
    Topic(OUTPUT_DEPTH_CAMERA_INFO, 'sensor_msgs/msg/CameraInfo', PUBLISHED,
          'The input\'s calibration (D, R, P kept: the depth is pixel-aligned with the unrectified image), '
          'for depth_image_proc and RViz.'),
    Topic(OUTPUT_DEPTH_COLORED, 'sensor_msgs/msg/Image', PUBLISHED,
          'Depth on a fixed colour scale (`depth_colored.min` .. `depth_colored.max`), bgr8.'),
    Topic(OUTPUT_POINTS, 'sensor_msgs/msg/PointCloud2', PUBLISHED,
          'The dense depth in 3-D for RViz, every `points.stride` pixels. Only with `points.enabled: true`.'),
    Topic(DEBUG_SALIENCY_OVERLAY, 'sensor_msgs/msg/Image', PUBLISHED,
          'Grad-CAM heat map (`saliency.layer`) over the image, bgr8; computed only while subscribed, at most '
          '`saliency.max_rate` per second. With an ONNX backend on the CPU the first subscriber loads torch '
          'and the model for it (seconds, once; logged).'),
    Topic(DIAGNOSTICS, 'diagnostic_msgs/msg/DiagnosticArray', PUBLISHED,
          'Input rates and the depth rate, `keeping_up` (no: inference is slower than the camera, so the newest '
          'image wins and the others are skipped; also said once in the log and in the OK message), '
          'pairing failures, drops and bad messages by reason, device, backend, `torch_loaded`, '
          'and latency p50/p95 split into pairing (waiting for radar / CameraInfo), slot (waiting for the busy '
          'inference worker), inference, work (the node\'s own: conversion, saliency, publishing), total '
          '(receive to publish) and added (total minus inference, per frame: what the node adds); over the last '
          '200 frames, every `diagnostics_period` s.'),
    Topic(TF_STATIC, 'tf2_msgs/msg/TFMessage', PUBLISHED,
          'The static `T_camera_radar` (image frame -> radar frame), with `use_tf: false` and '
          '`publish_static_tf: true`; needs tf2_msgs (else a logged note).'),
)

BY_NAME = {t.name: t for t in TOPICS}
SUBSCRIPTIONS = tuple(t for t in TOPICS if t.direction == SUBSCRIBED)
PUBLICATIONS = tuple(t for t in TOPICS if t.direction == PUBLISHED)
