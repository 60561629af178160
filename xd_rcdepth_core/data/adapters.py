"""Open a dataset adapter by name. Every adapter offers ``splits() -> {split: [key]}``,
``frame(key) -> Frame`` and ``image_file(key) -> Path | None`` (the file whose undecoded bytes the
cache may keep, None when the Frame's image is not that file as is)."""
from __future__ import annotations

DATASETS = ('nuscenes', 'zju', 'synthetic')


def open_adapter(dataset: str, root, version: str | None = None, **options):
    """The adapter of ``dataset`` over ``root``; ``options`` are fields of its config dataclass."""
    if dataset == 'nuscenes':
        from .nuscenes import NuScenesAdapter, NuScenesConfig
        return NuScenesAdapter(root, version or 'v1.0-trainval', NuScenesConfig(**options))
    if dataset == 'zju':
        from .zju import ZJUAdapter, ZJUConfig
        return ZJUAdapter(root, ZJUConfig(**options))
    if dataset == 'synthetic':
        from .synthetic import SyntheticAdapter
        return SyntheticAdapter(root, **options)
    raise ValueError(f'unknown dataset {dataset!r}; choose from {DATASETS}')
