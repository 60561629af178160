"""Datasets -> Frames -> cache -> torch Dataset.

- ``nuscenes``: nuScenes through the official devkit (``nuscenes_radar``, ``nuscenes_lidar``,
  ``nuscenes_movers`` build radar and ground truth; ``nuscenes_files`` checks and writes the sensor
  files; ``nuscenes_writer`` writes a synthetic sequence as a nuScenes-format dataset).
- ``zju``: ZJU-4DRadarCam; ``synthetic``: the synthetic world's native storage.
- ``cache`` / ``prepare``: one compact file per sample, made in parallel and resumably.
- ``dataset``: the torch Dataset with the references' augmentation.
- ``commands``: the ``prepare`` and ``show`` subcommands.

Names are imported lazily: importing this package must not pull in torch or the devkit.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    'DataWarning': 'errors', 'DatasetError': 'errors', 'SampleError': 'errors', 'CorruptFileError': 'errors',
    'CacheMismatchError': 'errors',
    'NuScenesAdapter': 'nuscenes', 'NuScenesConfig': 'nuscenes',
    'ZJUAdapter': 'zju', 'ZJUConfig': 'zju', 'SyntheticAdapter': 'synthetic',
    'open_adapter': 'adapters', 'DATASETS': 'adapters',
    'prepare': 'prepare', 'CacheIndex': 'cache', 'read_sample': 'cache', 'write_sample': 'cache',
    'RadarDepthDataset': 'dataset', 'AugmentConfig': 'dataset',
    'write_nuscenes': 'nuscenes_writer',
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f'.{_EXPORTS[name]}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = sorted(_EXPORTS)
