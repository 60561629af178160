"""The synthetic world's native storage (``xd-rcdepth synth``) as a dataset adapter.

Frames are read with the synthetic package's own reader (``synthetic.storage``), bit for bit as
written. Keys are ``<scene>/<frame index>``. Splits: the storage's ``meta.json`` may carry a
``splits`` mapping (split -> scene names); otherwise the last ``val_scenes`` scenes form ``val`` and
the rest ``train``.
"""
from __future__ import annotations

from pathlib import Path

from ..frame import Frame
from ..synthetic.storage import SyntheticStore, frame_stem, read_frame
from .errors import DatasetError, SampleError


class SyntheticAdapter:
    def __init__(self, root, val_scenes: int = 0):
        try:
            self.store = SyntheticStore(root)
        except (FileNotFoundError, ValueError) as exc:
            raise DatasetError(str(exc)) from exc
        self.root = Path(root)
        self.val_scenes = int(val_scenes)

    eval_multiple = 32         # as nuScenes (the synthetic camera is a scaled CAM_FRONT)

    def content_settings(self) -> dict:
        """The stored world's seed, size and generator settings (a world re-generated into the same
        root with others would give other frames under the same keys); val_scenes only assigns
        scenes to splits."""
        return {k: self.store.meta.get(k) for k in ('seed', 'size', 'generator')}

    def _scene_splits(self) -> dict:
        meta_splits = self.store.meta.get('splits')
        if meta_splits:
            return {s: list(names) for s, names in meta_splits.items()}
        scenes = self.store.scenes
        if self.val_scenes < 0 or (self.val_scenes and self.val_scenes >= len(scenes)):
            raise DatasetError(f'val_scenes={self.val_scenes} must leave at least one of the '
                               f'{len(scenes)} scene(s) for training')
        cut = len(scenes) - self.val_scenes
        return {k: v for k, v in (('train', scenes[:cut]), ('val', scenes[cut:])) if v}

    def splits(self) -> dict:
        by_scene = {}
        for scene, index in self.store.index:
            by_scene.setdefault(scene, []).append(f'{scene}/{index}')
        return {split: [k for s in scenes for k in by_scene.get(s, [])]
                for split, scenes in self._scene_splits().items()}

    def _parse(self, key: str) -> tuple:
        scene, _, index = key.rpartition('/')
        if not scene or not index.isdigit():
            raise SampleError(f'synthetic sample key must be <scene>/<frame index>, got {key!r}')
        return scene, int(index)

    def image_file(self, key: str) -> Path:
        scene, index = self._parse(key)
        return self.root / scene / f'{frame_stem(index)}.png'

    def frame(self, key: str) -> Frame:
        scene, index = self._parse(key)
        try:
            return read_frame(self.root, scene, index)
        except (FileNotFoundError, OSError, ValueError, KeyError) as exc:
            raise SampleError(f'synthetic frame {key} in {self.root}: {exc}') from exc
