"""Model names -> (class, config dataclass); ``build_model(name, **config)``."""
from __future__ import annotations

import dataclasses

import torch.nn as nn

from .baselines import LiRCDepth, LiRCDepthConfig
from .student import StudentConfig, XDRCDepth
from .teacher import CaFNet, TeacherConfig

MODELS = {
    'xd_rcdepth': (XDRCDepth, StudentConfig),   # the student (paper)
    'cafnet': (CaFNet, TeacherConfig),          # the teacher
    'lircdepth': (LiRCDepth, LiRCDepthConfig),  # lightweight baseline
}


def _entry(name: str):
    if name not in MODELS:
        raise ValueError(f'unknown model {name!r}; choose one of {", ".join(MODELS)}')
    return MODELS[name]


def make_config(name: str, **config):
    """The model's config dataclass from keyword values; unknown keys are an error, not ignored."""
    cls = _entry(name)[1]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(f'unknown config key{"s" if len(unknown) > 1 else ""} for {name}: {", ".join(unknown)}; '
                         f'known: {", ".join(sorted(fields))}')
    return cls(**config)


def build_model(name: str, **config) -> nn.Module:
    """``build_model('xd_rcdepth', fusion='add')``; see each config dataclass for the keys."""
    return _entry(name)[0](make_config(name, **config))


def config_to_dict(config) -> dict:
    """Plain dict (tuples as lists) - what a checkpoint stores and weights_only loading accepts."""
    def plain(v):
        return [plain(x) for x in v] if isinstance(v, (list, tuple)) else v
    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}
