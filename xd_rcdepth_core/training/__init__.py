"""Training: one Trainer for the teacher, student and distill recipes (see trainer.py).

    from xd_rcdepth_core.training import Trainer, load_config
    Trainer(load_config('config/train_distill.yaml', 'distill', ['data.cache=...'])).fit()
"""
from .config import KD_MODES, RECIPES, TrainConfig, load_config

__all__ = ['Trainer', 'TrainConfig', 'load_config', 'RECIPES', 'KD_MODES']


def __getattr__(name):
    # The Trainer pulls in torch; config alone does not, so `xd-rcdepth --help` and `info` stay fast.
    if name == 'Trainer':
        from .trainer import Trainer
        return Trainer
    raise AttributeError(name)
