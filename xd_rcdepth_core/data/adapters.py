"""Open a dataset adapter by name. Every adapter offers ``splits() -> {split: [key]}``,
``frame(key) -> Frame`` and ``image_file(key) -> Path | None`` (the file whose undecoded bytes the
cache may keep, None when the Frame's image is not that file as is)."""
from __future__ import annotations

from .nuscenes.adapter import NuScenesAdapter, NuScenesConfig
from .synthetic import SyntheticAdapter
from .zju import ZJUAdapter, ZJUConfig

DATASETS = ('nuscenes', 'zju', 'synthetic')


def open_adapter(dataset: str, root, version: str | None = None, **options):
    """The adapter of ``dataset`` over ``root``; ``options`` are fields of its config dataclass."""
    if dataset == 'nuscenes':
        return NuScenesAdapter(root, version or 'v1.0-trainval', NuScenesConfig(**options))
    if dataset == 'zju':
        return ZJUAdapter(root, ZJUConfig(**options))
    if dataset == 'synthetic':
        return SyntheticAdapter(root, **options)
    raise ValueError(f'unknown dataset {dataset!r}; choose from {DATASETS}')
