"""The model registry, in the style of torchvision's ``models/_api.py``: a name -> (class, config)
table that every architecture file fills with ``@register``, and that imports none of them, so
dependencies point one way (architecture -> registry <- checkpoint) and no cycle is possible.

    build_model('xd_rcdepth', fusion='add')      # the config dataclass's keys; unknown keys are an error

The architectures register when ``xd_rcdepth_core.models`` is imported (its ``__init__`` imports
them), which any import of this module does first.
"""
from __future__ import annotations

import dataclasses

import torch.nn as nn

MODELS: dict = {}   # name -> (nn.Module class, config dataclass)


def register(name: str, config_class):
    """Class decorator: ``@register('cafnet', TeacherConfig)``; sets the class's ``model_name``."""
    def decorate(cls):
        if name in MODELS and MODELS[name][0] is not cls:
            raise ValueError(f'model name {name!r} is registered twice ({MODELS[name][0].__name__}, {cls.__name__})')
        cls.model_name = name
        MODELS[name] = (cls, config_class)
        return cls
    return decorate


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
