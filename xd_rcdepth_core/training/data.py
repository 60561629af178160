"""Training batches in an order that is a function of (seed, epoch), so a resumed run sees the same data.

- ResumableSampler: a DistributedSampler (shuffled by seed + epoch, sharded over ranks, tail dropped)
  that can start inside an epoch, skipping the batches a killed run already consumed.
- SeededItems: each draw (seed, epoch, rank, position) seeds the augmentation RNG of its item, so
  crops, flips and colour jitter of a resumed run equal the uninterrupted run's whatever worker
  process draws the item.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..conventions import training_conventions
from ..data.cache import CacheIndex, read_sample
from ..data.dataset import AugmentConfig, RadarDepthDataset, resize_to_focal


def draw_seed(seed: int, epoch: int, rank: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, rank, position]).generate_state(1, np.uint64)[0]) >> 1


class SeededItems(Dataset):
    """Wraps a Dataset: item (index, seed) is dataset[index] drawn with the torch RNG seeded by seed.

    fork_rng restores the caller's RNG afterwards, so with workers=0 the model's random state is untouched.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


class ResumableSampler(DistributedSampler):
    """Yields (index, seed) pairs; set_position(epoch, batches_done) before iterating."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, num_replicas: int = 1, rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.skip = 0

    @property
    def batches_per_epoch(self) -> int:
        return self.num_samples // self.batch_size

    def set_position(self, epoch: int, batches_done: int) -> None:
        self.set_epoch(epoch)
        self.skip = batches_done * self.batch_size

    def __iter__(self):
        indices = list(super().__iter__())[:self.batches_per_epoch * self.batch_size]
        for position in range(self.skip, len(indices)):
            yield indices[position], draw_seed(self.seed, self.epoch, self.rank, position)

    def __len__(self) -> int:
        return self.batches_per_epoch * self.batch_size - self.skip


def make_loader(dataset: Dataset, sampler: ResumableSampler, workers: int, pin_memory: bool) -> DataLoader:
    return DataLoader(SeededItems(dataset), batch_size=sampler.batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=pin_memory, drop_last=True, persistent_workers=False)


def check_augmentation(config) -> None:
    """The issue-14 data settings (contrast, saturation, blur, noise, canonical_focal) are valid."""
    d = config.data
    for name in ('contrast', 'saturation', 'blur_sigma', 'noise_std'):
        lo_hi = tuple(getattr(d, name))
        if len(lo_hi) != 2 or not 0 <= lo_hi[0] <= lo_hi[1]:
            raise ValueError(f'data.{name} must be [low, high] with 0 <= low <= high, got {list(lo_hi)}')
    for name in ('blur_p', 'noise_p'):
        if not 0 <= getattr(d, name) <= 1:
            raise ValueError(f'data.{name} must be in [0, 1], got {getattr(d, name)}')
    if d.canonical_focal is not None and not (np.isfinite(d.canonical_focal) and d.canonical_focal > 0):
        raise ValueError(f'data.canonical_focal must be a positive number of pixels (or null), got {d.canonical_focal}')
    if config.distill.teacher_targets and (d.blur_p or d.noise_p or d.canonical_focal is not None):
        raise ValueError('distill.teacher_targets needs data.blur_p=0, data.noise_p=0 and data.canonical_focal=null: '
                         'the cached teacher outputs are of plain full frames')


def augment_config(config) -> AugmentConfig:
    """The training items' AugmentConfig from the config's data section."""
    d = config.data
    return AugmentConfig(crop=tuple(d.crop), flip_negates_lateral_velocity=d.flip_negates_lateral_velocity,
                         color_p=d.color_jitter_p, extrinsic_jitter=tuple(d.extrinsic_jitter),
                         contrast=tuple(d.contrast), saturation=tuple(d.saturation), blur_p=d.blur_p,
                         blur_sigma=tuple(d.blur_sigma), noise_p=d.noise_p, noise_std=tuple(d.noise_std),
                         canonical_focal=d.canonical_focal)


def training_camera(config) -> dict | None:
    """The training camera a checkpoint records (conventions.py ``inputs``): the cache's first training
    sample as the network sees it, so at data.canonical_focal when that is set."""
    d = config.data
    if not d.cache:
        return None
    frame = read_sample(CacheIndex(d.cache).path(d.train_split, 0))
    if d.canonical_focal is not None:
        frame = resize_to_focal(frame, d.canonical_focal)
        return training_conventions(np.diag([d.canonical_focal, d.canonical_focal, 1.0]), frame.height,
                                    frame.width).to_dict()
    return training_conventions(frame.K, frame.height, frame.width).to_dict()


def cache_datasets(config):
    """The training Dataset and a function giving the val Frames of a prepared cache."""
    d = config.data
    if not d.cache:
        raise ValueError('no training data: set data.cache=PATH (a cache made by `xd-rcdepth prepare`)')
    check_augmentation(config)
    augment = augment_config(config)
    train = RadarDepthDataset(d.cache, d.train_split, train=True, augment=augment)
    if d.val_split is None:
        return train, None
    index = CacheIndex(d.cache)
    if d.val_split not in index.splits:
        raise ValueError(f'val split {d.val_split!r} not in cache {d.cache}; it has {sorted(index.splits)} '
                         f'(data.val_split=null trains without validation)')
    names = index.names(d.val_split)
    count = len(names) if d.val_limit is None else min(d.val_limit, len(names))

    def val_frames(rank: int = 0, world: int = 1):
        """Val Frames i = rank, rank + world, ... (a shard per process)."""
        for i in range(rank, count, world):
            yield index.frame(d.val_split, i)
    # The dataset's evaluation crop travels with the frames (ZJU keeps every row, nuScenes 900 -> 896).
    val_frames.eval_multiple = index.eval_multiple(d.val_split)
    return train, val_frames
