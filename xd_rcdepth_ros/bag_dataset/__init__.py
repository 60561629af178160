"""Recorded rosbag2 folders -> a training cache (`xd-rcdepth prepare --dataset rosbag`).

    adapter.py    RosbagAdapter: the bag's frames, read as replay-eval reads them, with single-sweep and
                  ego-motion-aligned accumulated lidar ground truth; splits by bag or by time block
"""
from .adapter import RosbagAdapter, RosbagConfig

__all__ = ['RosbagAdapter', 'RosbagConfig']
