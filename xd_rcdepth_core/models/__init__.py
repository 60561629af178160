"""Networks: the XD-RCDepth student, the CaFNet teacher, the LiRCDepth baseline.

All share ``forward(image, radar) -> dict`` (``depth`` in metres, ``taps`` for X-KD, ``features``);
see student.py for the contract and each module's docstring for its channel plan.
"""
from .checkpoint import load_model, read_checkpoint, save_checkpoint
from .registry import MODELS, build_model, config_to_dict, make_config

__all__ = ['MODELS', 'build_model', 'make_config', 'config_to_dict', 'save_checkpoint', 'load_model',
           'read_checkpoint']
