"""ZJU-4DRadarCam (RadarCam-Depth, ICRA 2024) -> Frame.

Layout (docs/reference.md Part A 6, Part B 8): ``root/{image, radar, gt, gt_interp}/<id>.{png,npy}`` and
``root/{train,val,test}.txt`` with one frame id per line (``full.txt`` is their union and is not a
split). ``root`` may be the ``ZJU-4DRadarCam`` folder or its ``data`` sub-folder.

- image: PNG, 1280 x 720 RGB. K: the published intrinsics (``config.ZJU_CAMERA``, scaled if an image
  has another size). The published distortion is small and not applied (the images are used as they
  are by RadarCam-Depth too).
- radar: ``.npy`` N x 3 = (u, v, depth in m), already projected into the image. Back-projected with K
  to camera-frame xyz, so ``T_camera_radar`` is the identity and ``radar_fields`` is ('x', 'y', 'z')
  (no RCS or velocity in this dataset). Points with non-positive or non-finite depth are dropped.
- depth_sparse: ``gt/`` (sparse lidar, the evaluation target); depth_interp: ``gt_interp/`` (the
  training target). Both 16-bit PNG, depth x 256. There is no accumulated map (gt_interp was
  interpolated from the sparse map directly).
- optional crop to rows 240-540 (1280 x 300), as RadarCam-Depth's loaders and evaluation do:
  image and GT rows cut, cy shifted, radar points outside the band dropped.
- evaluation keeps every row (``eval_multiple = 0``): RadarCam-Depth evaluates all 300 rows of the
  crop, and our models pad to their stride inside and return depth at the input size, so nothing
  needs cutting to a multiple of 32 (unlike nuScenes, where the references drop 4 top rows).
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..config import ZJU_CAMERA, CameraModel
from ..frame import Frame
from ..geometry import backproject_pixels
from .errors import CorruptFileError, DatasetError, DataWarning, SampleError
from .images import read_depth_png, read_image_file

ZJU_SPLITS = ('train', 'val', 'test')
# RadarCam-Depth data/datasets.py: rows 720 // 3 .. 720 // 4 * 3 of the 720-row frames.
ZJU_CROP_ROWS = (240, 540)
ZJU_FIELDS = ('x', 'y', 'z')


@dataclass(frozen=True)
class ZJUConfig:
    camera: CameraModel = ZJU_CAMERA
    crop_rows: Optional[tuple] = None     # e.g. ZJU_CROP_ROWS for the RadarCam-Depth protocol


def _read_ids(path: Path) -> list:
    ids = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            ids.append(Path(line).name.rsplit('.', 1)[0] if line.endswith(('.png', '.npy')) else line)
    return ids


class ZJUAdapter:
    """Frames of a ZJU-4DRadarCam folder."""

    def __init__(self, root, config: ZJUConfig = ZJUConfig()):
        root = Path(root)
        if not (root / 'image').is_dir() and (root / 'data' / 'image').is_dir():
            root = root / 'data'
        if not (root / 'image').is_dir() or not (root / 'radar').is_dir():
            raise DatasetError(f'{root} is not a ZJU-4DRadarCam data folder (needs image/ and radar/)')
        if config.crop_rows is not None:
            top, bottom = config.crop_rows
            if not 0 <= top < bottom:
                raise ValueError(f'crop_rows must be (top, bottom) with 0 <= top < bottom, got {config.crop_rows}')
        self.root, self.config = root, config

    eval_multiple = 0          # evaluate on every row (module docstring)

    def content_settings(self) -> dict:
        """What decides a sample's content (the cache fingerprints it): camera model and crop."""
        return asdict(self.config)

    def splits(self) -> dict:
        out = {s: _read_ids(self.root / f'{s}.txt') for s in ZJU_SPLITS if (self.root / f'{s}.txt').is_file()}
        if not out:
            raise DatasetError(f'no split file ({", ".join(s + ".txt" for s in ZJU_SPLITS)}) in {self.root}')
        return out

    def image_file(self, frame_id: str) -> Optional[Path]:
        """The PNG a Frame's image is decoded from, or None when the Frame is a crop of it."""
        return None if self.config.crop_rows is not None else self.root / 'image' / f'{frame_id}.png'

    def frame(self, frame_id: str) -> Frame:
        image = read_image_file(self.root / 'image' / f'{frame_id}.png')
        H, W = image.shape[:2]
        K = self.config.camera.intrinsics(H, W)
        radar = self._radar(frame_id, K)
        gt = {name: self._depth(folder, frame_id, (H, W)) for name, folder in
              (('depth_sparse', 'gt'), ('depth_interp', 'gt_interp'))}
        if self.config.crop_rows is not None:
            image, K, radar, gt = self._crop(image, K, radar, gt)
        return Frame(image=image, K=K, radar=radar, radar_fields=ZJU_FIELDS, T_camera_radar=np.eye(4),
                     name=frame_id, **{k: v for k, v in gt.items() if v is not None})

    def _radar(self, frame_id: str, K) -> np.ndarray:
        path = self.root / 'radar' / f'{frame_id}.npy'
        if not path.is_file():
            raise SampleError(f'missing file {path}')
        try:
            uvd = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise CorruptFileError(f'{path}: cannot read radar .npy ({exc})') from exc
        uvd = np.asarray(uvd, np.float64)
        if uvd.size == 0:
            return np.zeros((0, 3), np.float32)
        if uvd.ndim != 2 or uvd.shape[1] < 3:
            raise CorruptFileError(f'{path}: radar .npy must be N x 3 (u, v, depth), got shape {uvd.shape}')
        ok = np.all(np.isfinite(uvd[:, :3]), axis=1) & (uvd[:, 2] > 0)
        if not ok.all():
            warnings.warn(DataWarning(f'{path}: {int((~ok).sum())} radar points with non-positive or '
                                      f'non-finite depth dropped'), stacklevel=3)
        uvd = uvd[ok]
        return backproject_pixels(uvd[:, 0], uvd[:, 1], uvd[:, 2], K).astype(np.float32)

    def _depth(self, folder: str, frame_id: str, shape) -> Optional[np.ndarray]:
        path = self.root / folder / f'{frame_id}.png'
        if not path.is_file():
            warnings.warn(DataWarning(f'missing file {path}: no {folder} depth for this frame'), stacklevel=3)
            return None
        depth = read_depth_png(path)
        if depth.shape != shape:
            raise CorruptFileError(f'{path}: depth map is {depth.shape}, image is {shape}')
        return depth

    def _crop(self, image, K, radar, gt):
        top, bottom = self.config.crop_rows
        if bottom > image.shape[0]:
            raise SampleError(f'crop rows {self.config.crop_rows} exceed the image height {image.shape[0]}')
        K = K.copy()
        K[1, 2] -= top
        v = radar[:, 1] / radar[:, 2] * K[1, 1] + K[1, 2] if radar.size else np.zeros(0)
        radar = radar[(v >= -0.5) & (v < bottom - top - 0.5)]
        gt = {k: None if d is None else np.ascontiguousarray(d[top:bottom]) for k, d in gt.items()}
        return np.ascontiguousarray(image[top:bottom]), K, radar, gt
