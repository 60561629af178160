"""The command-line options that choose a bag's topics, radar fields, pairing and extrinsics: replay-eval's,
shared with `prepare --dataset rosbag` so both read a bag the same way."""
from __future__ import annotations


def add_bag_layout_arguments(parser, radar_sweeps: bool = True) -> None:
    """Add --camera-topic ... --T-camera-lidar to ``parser`` (or an argument group).

    ``radar_sweeps`` False leaves out --radar-sweeps (for a parser that already has it)."""
    parser.add_argument('--camera-topic', help='Image or CompressedImage topic (default: the bag\'s sidecar, '
                                               'then /CAM_FRONT/image_raw[/compressed], then the only one)')
    parser.add_argument('--camera-info-topic', help='CameraInfo topic (default: next to the camera topic)')
    parser.add_argument('--radar-topic', help='radar PointCloud2 topic (default /RADAR_FRONT, or the only one '
                                              'whose name says radar)')
    parser.add_argument('--lidar-topic', help='lidar PointCloud2 topic for ground truth (default /LIDAR_TOP, or '
                                              'the only one whose name says lidar)')
    parser.add_argument('--radar-fields', default='rcs,vx,vy',
                        help='PointCloud2 fields fed as the model\'s rcs, vx, vy (default rcs,vx,vy)')
    parser.add_argument('--sync-tolerance', type=float, default=0.08,
                        help='largest |image - radar| stamp difference of a pair in s (the node\'s; default 0.08)')
    parser.add_argument('--lidar-tolerance', type=float, default=0.05,
                        help='largest |image - lidar| stamp difference for ground truth in s (default 0.05)')
    if radar_sweeps:
        parser.add_argument('--radar-sweeps', type=int, default=1, help='radar sweeps per image (default 1)')
    parser.add_argument('--T-camera-radar', dest='T_camera_radar', metavar='tx,ty,tz,qw,qx,qy,qz',
                        help='radar -> camera extrinsics (default: the bag\'s extrinsics.yaml, then /tf_static)')
    parser.add_argument('--T-camera-lidar', dest='T_camera_lidar', metavar='tx,ty,tz,qw,qx,qy,qz',
                        help='lidar -> camera extrinsics (default: extrinsics.yaml, then /tf_static)')
