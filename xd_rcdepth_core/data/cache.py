"""The preprocessing cache: one compact file per sample, one index per split, read back as Frames.

Layout of a cache folder::

    index.json              format version, split sizes, and per split the record of the run that
                            made it (dataset, root, version, options, settings, fingerprint)
    <split>.txt             sample names of the split, in dataset order
    <split>/<name>.npz      one sample (below)
    summary.json            the last prepare run's summary

Several runs may fill one cache (nuScenes v1.0-trainval, then v1.0-test into the same folder): each
run rewrites only the splits it prepared and keeps the others (``write_index`` merges). A split's
samples all come from one set of content settings: the ``fingerprint`` (``settings_fingerprint``) is
stored in the split's record and in every sample's statistics, so a run with other settings is
refused instead of mixing samples (``prepare.py``).

A sample file (``np.savez_compressed``, no pickles) holds the camera image as the source file's own
bytes when the Frame's image is that file unmodified (nuScenes JPEG: lossless with respect to the
dataset and 10-20x smaller than raw pixels) or else as a PNG; the depth maps as uint16 = floor(depth x
256) like the references' PNGs (resolution 3.9 mm, 0 = none); radar points as float32 with their field
names; K, the transforms, timestamp, name; and a small JSON of per-sample statistics so that a
resumed run can summarise samples it did not redo. Lidar points are not stored (the maps are).

Files are written to a temporary name in the same folder and renamed with ``os.replace``: a killed
run leaves either a whole file or a ``<name>.tmp<pid>`` file (a sample, or index.json, summary.json,
a split list at the top), which the next run deletes.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Optional

import numpy as np

from ..frame import DEPTH_MAPS, Frame
from .images import decode_image, depth_from_uint16, depth_to_uint16, encode_png

CACHE_FORMAT = 1
TMP_MARK = '.tmp'
_TMP_NAME = re.compile(re.escape(TMP_MARK) + r'\d+$')     # what atomic_write_bytes names a temporary
_TRANSFORMS = ('T_camera_radar', 'T_world_camera')


def sample_filename(name: str) -> str:
    """File name of a sample; path separators in dataset ids become '__'."""
    return name.replace('/', '__').replace(os.sep, '__') + '.npz'


def sample_path(cache, split: str, name: str) -> Path:
    return Path(cache) / split / sample_filename(name)


def atomic_write_bytes(path: Path, write) -> None:
    """Call write(file object) on a temporary file next to ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'{path.name}{TMP_MARK}{os.getpid()}')
    try:
        with open(tmp, 'wb') as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda fh: fh.write(text.encode('utf-8')))


def remove_stale_temporaries(cache) -> int:
    """Delete temporary files a killed run left behind, at the top (index.json, summary.json, split
    lists) and in the split folders (samples); returns how many."""
    cache = Path(cache)
    count = 0
    for tmp in [*cache.glob(f'*{TMP_MARK}*'), *cache.glob(f'*/*{TMP_MARK}*')]:
        if tmp.is_file() and _TMP_NAME.search(tmp.name):
            tmp.unlink()
            count += 1
    return count


def settings_fingerprint(settings: dict) -> str:
    """A short digest of the settings that decide what a sample file holds (same settings, same digest)."""
    text = json.dumps({'cache_format': CACHE_FORMAT, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_sample(path, frame: Frame, stats: dict, image_bytes: Optional[bytes] = None,
                 image_format: str = 'png') -> None:
    """Store one Frame. ``image_bytes``: the encoded source image whose decode equals frame.image."""
    if image_bytes is None:
        image_bytes, image_format = encode_png(frame.image), 'png'
    arrays = dict(
        format=np.int64(CACHE_FORMAT), name=np.str_(frame.name), timestamp=np.float64(frame.timestamp),
        image=np.frombuffer(image_bytes, np.uint8), image_format=np.str_(image_format),
        image_shape=np.array(frame.image.shape, np.int64), K=frame.K,
        radar=frame.radar.astype(np.float32), radar_fields=np.array(frame.radar_fields, dtype=np.str_),
        stats=np.str_(json.dumps(stats)))
    for t in _TRANSFORMS:
        if getattr(frame, t) is not None:
            arrays[t] = getattr(frame, t)
    for m in DEPTH_MAPS:
        if getattr(frame, m) is not None:
            arrays[m] = depth_to_uint16(getattr(frame, m))
    atomic_write_bytes(path, lambda fh: np.savez_compressed(fh, **arrays))


def read_stats(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z['stats']))


def read_sample(path) -> Frame:
    """The Frame of a cache file (depth maps quantised to 1/256 m, no lidar points)."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        if int(z['format']) != CACHE_FORMAT:
            raise ValueError(f'{path}: cache format {int(z["format"])}, this code reads {CACHE_FORMAT}; '
                             f're-run prepare into a new folder')
        image = decode_image(z['image'].tobytes(), path)
        if tuple(image.shape) != tuple(z['image_shape']):
            raise ValueError(f'{path}: stored image decodes to {image.shape}, expected {tuple(z["image_shape"])}')
        extra = {t: z[t] for t in _TRANSFORMS if t in z.files}
        extra.update({m: depth_from_uint16(z[m]) for m in DEPTH_MAPS if m in z.files})
        return Frame(image=image, K=z['K'], radar=z['radar'], radar_fields=tuple(str(f) for f in z['radar_fields']),
                     timestamp=float(z['timestamp']), name=str(z['name']), **extra)


class CacheIndex:
    """The splits and sample files of a prepared cache folder."""

    def __init__(self, cache):
        self.root = Path(cache)
        index = self.root / 'index.json'
        if not index.is_file():
            raise FileNotFoundError(f'{self.root} is not a prepared cache (no index.json); run '
                                    f'`xd-rcdepth prepare` first')
        self.meta = json.loads(index.read_text())
        self.splits = {s: [n for n in (self.root / f'{s}.txt').read_text().splitlines() if n]
                       for s in self.meta['splits']}

    def record(self, split: str) -> dict:
        """What the run that prepared ``split`` recorded (dataset, version, options, settings...)."""
        self.names(split)
        return self.meta.get('split_info', {}).get(split, {})

    def eval_multiple(self, split: str) -> int:
        """Evaluation crop of ``split``: drop top rows / right columns to this multiple, 0 = keep all.

        The dataset's rule as its adapter recorded it (nuScenes 32: the references' 900 -> 896;
        ZJU 0: RadarCam-Depth evaluates every row); caches without the record: 0 for ZJU, else 32.
        """
        record = self.record(split)
        if 'eval_multiple' in record:
            return int(record['eval_multiple'])
        return 0 if record.get('dataset', self.meta.get('dataset')) == 'zju' else 32

    def names(self, split: str) -> list:
        if split not in self.splits:
            raise KeyError(f'split {split!r} not in cache {self.root}; it has {sorted(self.splits)}')
        return self.splits[split]

    def path(self, split: str, index: int) -> Path:
        return sample_path(self.root, split, self.names(split)[index])

    def frame(self, split: str, index: int) -> Frame:
        return read_sample(self.path(split, index))


def read_index(cache) -> dict:
    """index.json of a cache folder, {} if there is none yet."""
    path = Path(cache) / 'index.json'
    return json.loads(path.read_text()) if path.is_file() else {}


def write_index(cache, splits: dict, records: Optional[dict] = None) -> dict:
    """Write the lists of ``splits`` (split -> names), then index.json last (its presence marks a
    usable cache), merged with the existing one: splits not named here keep their lists and records.
    ``records``: split -> what to record about the run that made it. Returns the new index."""
    cache = Path(cache)
    old = read_index(cache)
    counts, info = dict(old.get('splits', {})), dict(old.get('split_info', {}))
    for split in counts:        # an index of the older layout: its one top-level record was every split's
        info.setdefault(split, {k: old[k] for k in ('dataset', 'root', 'version', 'options') if k in old})
    for split, names in splits.items():
        atomic_write_text(cache / f'{split}.txt', ''.join(n + '\n' for n in names))
        counts[split] = len(names)
        info[split] = {**(records or {}).get(split, {}), 'samples': len(names)}
    index = {'format': CACHE_FORMAT, 'splits': counts, 'split_info': info}
    atomic_write_text(cache / 'index.json', json.dumps(index, indent=2))
    return index
