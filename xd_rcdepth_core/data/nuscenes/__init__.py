"""nuScenes through the official nuscenes-devkit (imported only when a dataset is opened).

    adapter.py    nuScenes -> Frame: one per CAM_FRONT keyframe, splits, sample counts
    radar.py      radar sweeps into the camera through the ego poses at both timestamps
    lidar.py      single-sweep and accumulated lidar ground truth; movers.py: what is removed as moving
    poses.py      ego and sensor poses; files.py: the sensor files' exact formats, checked and written
    tables.py, writer.py   a synthetic sequence written as a nuScenes-format dataset the devkit loads
"""
from .adapter import NuScenesAdapter, NuScenesConfig, open_nuscenes
from .writer import write_nuscenes

__all__ = ['NuScenesAdapter', 'NuScenesConfig', 'open_nuscenes', 'write_nuscenes']
