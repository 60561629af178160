"""On-disk format of synthetic sequences, and its lossless reader.

Layout (format name "xd_rcdepth.synthetic", version 1):

    DIR/meta.json                  format, version, complete flag, seed, size, generator settings,
                                   and per scene its name, seed and frame count
    DIR/<scene>/frame-NNNN.png     the RGB image, 8-bit lossless PNG
    DIR/<scene>/frame-NNNN.npz     numpy compressed archive of the rest of the Frame:
        K (3x3 float64), radar (N x 18 float32, in the radar frame), radar_fields (str array),
        T_camera_radar, T_camera_lidar, T_world_camera (4x4 float64), timestamp (float64 s),
        depth_sparse, depth_accumulated, depth_interp, depth_dense (H x W float32 m, 0 = no value),
        lidar (N x 4 float32 x, y, z, intensity in the lidar frame), name (str).
        Fields a Frame does not have are absent.
    DIR/panels/<name>.png          optional frame_panel pictures (--visualise), not read back

Every file is written to a temporary name and renamed, so a killed writer leaves whole files only;
meta.json says "complete": false until the last frame is written. Reading gives back Frames whose
arrays equal the written ones bit for bit.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..frame import Frame
from ..viz import write_atomic

FORMAT = 'xd_rcdepth.synthetic'
VERSION = 1
ARRAYS = ('K', 'radar', 'T_camera_radar', 'depth_sparse', 'depth_accumulated', 'depth_interp', 'depth_dense',
          'lidar', 'T_camera_lidar', 'T_world_camera')


def frame_stem(index: int) -> str:
    return f'frame-{index:04d}'


def write_meta(root, meta: dict) -> None:
    body = dict(format=FORMAT, version=VERSION)
    body.update(meta)
    write_atomic(Path(root) / 'meta.json', (json.dumps(body, indent=2, sort_keys=True) + '\n').encode())


def read_meta(root) -> dict:
    path = Path(root) / 'meta.json'
    if not path.is_file():
        raise FileNotFoundError(f'{root} is not a synthetic dataset: {path} is missing')
    meta = json.loads(path.read_text())
    if meta.get('format') != FORMAT:
        raise ValueError(f'{path} has format {meta.get("format")!r}, expected {FORMAT!r}')
    if int(meta.get('version', -1)) > VERSION:
        raise ValueError(f'{path} is format version {meta.get("version")}; this reader knows up to {VERSION}')
    return meta


def write_frame(root, scene: str, index: int, frame: Frame) -> tuple:
    """Write one Frame as <scene>/frame-NNNN.png + .npz; returns the two paths."""
    folder = Path(root) / scene
    stem = frame_stem(index)
    ok, png = cv2.imencode('.png', cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f'could not encode the image of {frame.name} as PNG')
    arrays = {name: getattr(frame, name) for name in ARRAYS if getattr(frame, name) is not None}
    arrays['radar_fields'] = np.array(frame.radar_fields, dtype=str)
    arrays['timestamp'] = np.float64(frame.timestamp)
    arrays['name'] = np.array(frame.name, dtype=str)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomic(folder / f'{stem}.npz', buffer.getvalue())
    write_atomic(folder / f'{stem}.png', png.tobytes())
    return folder / f'{stem}.png', folder / f'{stem}.npz'


def read_frame(root, scene: str, index: int) -> Frame:
    folder = Path(root) / scene
    stem = frame_stem(index)
    image = cv2.imread(str(folder / f'{stem}.png'), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f'cannot read {folder / f"{stem}.png"}')
    with np.load(folder / f'{stem}.npz', allow_pickle=False) as data:
        fields = {name: data[name] for name in ARRAYS if name in data.files}
        fields['radar_fields'] = tuple(str(s) for s in data['radar_fields'])
        fields['timestamp'] = float(data['timestamp'])
        fields['name'] = str(data['name'])
    return Frame(image=cv2.cvtColor(image, cv2.COLOR_BGR2RGB), **fields)


class SyntheticStore:
    """Random access to a written dataset: len(store), store[i] -> Frame, store.scene_frames(name)."""

    def __init__(self, root):
        self.root = Path(root)
        self.meta = read_meta(self.root)
        self.index = []          # (scene, frame index) of every frame present on disk, in order
        for scene in self.meta.get('scenes', []):
            name = scene['name']
            for i in range(int(scene['frames'])):
                stem = self.root / name / frame_stem(i)
                if stem.with_suffix('.png').is_file() and stem.with_suffix('.npz').is_file():
                    self.index.append((name, i))

    @property
    def scenes(self) -> list:
        return [s['name'] for s in self.meta.get('scenes', [])]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> Frame:
        scene, index = self.index[i]
        return read_frame(self.root, scene, index)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self[i]

    def scene_frames(self, scene: str) -> Iterator[Frame]:
        if scene not in self.scenes:
            raise KeyError(f'no scene {scene!r} in {self.root}; scenes: {", ".join(self.scenes)}')
        for name, index in self.index:
            if name == scene:
                yield read_frame(self.root, name, index)


def read_sequence(root, scene: str | None = None) -> Iterator[Frame]:
    """Frames of a written dataset in order (all scenes, or one)."""
    store = SyntheticStore(root)
    return store.scene_frames(scene) if scene is not None else iter(store)
