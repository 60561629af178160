"""Datasets -> Frames -> cache -> torch Dataset.

    nuscenes/     nuScenes through the official devkit (adapter, radar, lidar GT, movers, files, and a
                  writer of synthetic sequences as a nuScenes-format dataset)
    zju.py        ZJU-4DRadarCam; synthetic.py: the synthetic world's native storage as a dataset
    adapters.py   dataset name -> adapter; errors.py: dataset and sample errors
    cache.py, prepare.py   one compact file per sample, made in parallel and resumably
    dataset.py    the torch Dataset with the references' augmentation; images.py, show.py: JPEG, pictures
"""
from .adapters import DATASETS, open_adapter
from .cache import CacheIndex, read_sample, write_sample
from .dataset import AugmentConfig, RadarDepthDataset
from .errors import CacheMismatchError, CorruptFileError, DatasetError, DataWarning, SampleError
from .nuscenes import NuScenesAdapter, NuScenesConfig, write_nuscenes
from .prepare import prepare
from .synthetic import SyntheticAdapter
from .zju import ZJUAdapter, ZJUConfig

__all__ = ['DATASETS', 'open_adapter', 'CacheIndex', 'read_sample', 'write_sample', 'AugmentConfig',
           'RadarDepthDataset', 'CacheMismatchError', 'CorruptFileError', 'DatasetError', 'DataWarning',
           'SampleError', 'NuScenesAdapter', 'NuScenesConfig', 'write_nuscenes', 'prepare', 'SyntheticAdapter',
           'ZJUAdapter', 'ZJUConfig']
