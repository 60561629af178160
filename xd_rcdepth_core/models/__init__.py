"""Networks: the XD-RCDepth student, the CaFNet teacher, the LiRCDepth and RadarNet baselines.

All share ``forward(image, radar) -> dict`` (``depth`` in metres, ``taps`` for X-KD, ``features``);
see student.py for the contract and each module's docstring for its channel plan.

    registry.py     name -> (class, config); ``build_model``; architectures register themselves
    student.py, teacher.py, baselines.py, radarnet.py   the architectures; blocks.py their shared blocks
    checkpoint.py   our checkpoint files; files.py safe torch I/O; pretrained.py ImageNet backbones
    fingerprint.py  one hash of a model's name, config and weights; summary.py parameters and MACs
"""
from . import baselines, radarnet, student, teacher  # noqa: F401  (each registers its model)
from .checkpoint import load_model, read_checkpoint, save_checkpoint
from .registry import MODELS, build_model, config_to_dict, make_config

__all__ = ['MODELS', 'build_model', 'make_config', 'config_to_dict', 'save_checkpoint', 'load_model',
           'read_checkpoint']
