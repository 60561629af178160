"""Training: one Trainer for the teacher, student and distill recipes.

    config.py      the run's configuration (one dataclass tree, YAML + dotted overrides)
    trainer.py     the loop: steps, validation, checkpoints, early stopping, resume
    objectives.py  the loss of each recipe; targets.py the teacher's radar-confidence target
    data.py        resumable, seeded data order; optim.py AdamW groups and the poly schedule
    state.py       training checkpoints; distributed.py torchrun / DDP; reporting.py logs and TensorBoard
    synthetic_cache.py   a small synthetic cache for tests and CPU benchmarks

    from xd_rcdepth_core.training import Trainer, load_config
    Trainer(load_config('config/train_distill.yaml', 'distill', ['data.cache=...'])).fit()
"""
from .config import KD_MODES, RECIPES, TrainConfig, load_config
from .trainer import Trainer

__all__ = ['Trainer', 'TrainConfig', 'load_config', 'RECIPES', 'KD_MODES']
