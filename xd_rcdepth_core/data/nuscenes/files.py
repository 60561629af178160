"""nuScenes sensor files and table folder: exact-format writers, checks before the devkit reads, readers.

The devkit's parsers trust their input: a radar ``.pcd`` whose payload was written as float32 x 18
under the packed 43-byte header decodes to garbage without an error, a payload without the trailing
byte fails with a bare ``AssertionError``, a wrong version folder with "Database version not found".
The ``check_*`` functions here read only the header and the file size and raise one
``CorruptFileError``/``DatasetError`` naming the file and what is wrong; the readers then call the
devkit itself (docs/reference.md Part B sections 4-5 list the facts these checks encode).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ...frame import NUSCENES_RADAR_FIELDS
from ..errors import CorruptFileError, DatasetError, DataWarning, SampleError

# The 13 tables NuScenes() opens at init; all may be [] except map.
NUSCENES_TABLES = ('category', 'attribute', 'visibility', 'instance', 'sensor', 'calibrated_sensor',
                   'ego_pose', 'log', 'scene', 'sample', 'sample_data', 'sample_annotation', 'map')

# One packed little-endian record of a nuScenes radar .pcd (43 bytes, no padding), in field order.
RADAR_PCD_DTYPE = np.dtype([
    ('x', '<f4'), ('y', '<f4'), ('z', '<f4'), ('dyn_prop', 'i1'), ('id', '<i2'), ('rcs', '<f4'),
    ('vx', '<f4'), ('vy', '<f4'), ('vx_comp', '<f4'), ('vy_comp', '<f4'), ('is_quality_valid', 'i1'),
    ('ambig_state', 'i1'), ('x_rms', 'i1'), ('y_rms', 'i1'), ('invalid_state', 'i1'), ('pdh0', 'i1'),
    ('vx_rms', 'i1'), ('vy_rms', 'i1')])
assert RADAR_PCD_DTYPE.names == NUSCENES_RADAR_FIELDS and RADAR_PCD_DTYPE.itemsize == 43

# The devkit reads header lines by position, so the order is part of the format.
_RADAR_HEADER = ('# .PCD v0.7 - Point Cloud Data file format\n'
                 'VERSION 0.7\n'
                 'FIELDS ' + ' '.join(NUSCENES_RADAR_FIELDS) + '\n'
                 'SIZE 4 4 4 1 2 4 4 4 4 4 1 1 1 1 1 1 1 1\n'
                 'TYPE F F F I I F F F F F I I I I I I I I\n'
                 'COUNT ' + ' '.join(['1'] * 18) + '\n'
                 'WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA binary\n')
_FLOAT32_X18 = 18 * 4      # bytes per point of the common "everything float32" converter bug
LIDAR_BIN_COLUMNS = 5      # x, y, z, intensity, ring index (float32 each)
# Keep every radar return: the references disable all devkit filters (docs/reference.md Part A 1.3).
# Passed per call so the devkit's class-level (global) filter state is never touched. The whole int8
# range rather than the devkit's disable_filters() lists (0-17, 0-7, 0-4), so that not even an
# out-of-spec state value drops a point silently.
_INT8 = list(range(-128, 128))
ALL_RADAR_STATES = dict(invalid_states=_INT8, dynprop_states=_INT8, ambig_states=_INT8)


def check_dataroot(root, version: str) -> Path:
    """The table folder ``root/version`` after checking that all 13 tables are there."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f'nuScenes dataroot {root} does not exist')
    folder = root / version
    if not folder.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith('v1.0'))
        raise DatasetError(f'nuScenes version folder {folder} not found (version {version!r}); '
                           f'version folders present: {found or "none"}')
    missing = [t + '.json' for t in NUSCENES_TABLES if not (folder / f'{t}.json').is_file()]
    if missing:
        raise DatasetError(f'nuScenes tables missing in {folder}: {", ".join(missing)}')
    return folder


def _require_file(path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise SampleError(f'missing file {path}')
    data = path.read_bytes()
    if data.startswith(b'version https://git-lfs'):
        raise CorruptFileError(f'{path} is a Git LFS pointer ({len(data)} bytes), not sensor data')
    return data


def write_radar_pcd(path, points) -> None:
    """Write N x 18 radar points (NUSCENES_RADAR_FIELDS order) as a devkit-readable binary .pcd.

    An empty cloud is written as one all-NaN record (WIDTH 0 is rejected by the devkit); one trailing
    byte follows the payload because the devkit's parser needs it. The devkit reads a NaN anywhere in
    the FIRST record as "empty cloud" and drops every point, so a record without NaN is moved to the
    front (the others keep their order); a cloud in which every record has a NaN cannot be written
    (ValueError), nor can a non-finite value in an integer field.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, len(NUSCENES_RADAR_FIELDS))
    if pts.shape[0] == 0:
        rec = np.zeros(1, RADAR_PCD_DTYPE)
        for name in ('x', 'y', 'z', 'rcs', 'vx', 'vy', 'vx_comp', 'vy_comp'):
            rec[name] = np.nan
    else:
        ints = [j for j, name in enumerate(NUSCENES_RADAR_FIELDS) if RADAR_PCD_DTYPE[name].kind != 'f']
        if not np.isfinite(pts[:, ints]).all():
            raise ValueError(f'{path}: non-finite value in an integer radar field')
        clean = ~np.isnan(pts).any(axis=1)
        if not clean.any():
            raise ValueError(f'{path}: every one of the {len(pts)} radar points has a NaN field; the devkit '
                             f'would read the file as an empty cloud')
        first = int(np.argmax(clean))
        if first:
            pts = pts[[first, *range(first), *range(first + 1, len(pts))]]
        rec = np.zeros(pts.shape[0], RADAR_PCD_DTYPE)
        for j, name in enumerate(NUSCENES_RADAR_FIELDS):
            kind = RADAR_PCD_DTYPE[name].kind
            rec[name] = pts[:, j] if kind == 'f' else np.rint(pts[:, j])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_RADAR_HEADER.format(n=rec.size).encode('ascii') + rec.tobytes() + b'\n')


def _split_header(data: bytes, path) -> tuple[list, bytes]:
    lines, pos = [], 0
    while len(lines) < 11:
        end = data.find(b'\n', pos)
        if end < 0:
            raise CorruptFileError(f'{path}: radar .pcd header is cut short after {len(lines)} of 11 lines')
        lines.append(data[pos:end].decode('ascii', 'replace').strip())
        pos = end + 1
        if lines[-1].startswith('DATA'):
            break
    return lines, data[pos:]


def check_radar_pcd(path) -> int:
    """Number of records of a radar .pcd after checking its header against its size; raises one error.

    Warns (DataWarning) when a file of several records has a NaN in its first one: the devkit returns
    no points at all for it (its "empty cloud" convention), though the others may be fine."""
    data = _require_file(path)
    lines, payload = _split_header(data, path)
    if len(lines) != 11 or not lines[0].startswith('#') or not lines[1].startswith('VERSION'):
        raise CorruptFileError(f'{path}: radar .pcd header must be 11 lines starting with a comment and '
                               f'VERSION (the devkit reads them by position), got {lines[:3]}')
    try:
        sizes = [int(s) for s in lines[3].split()[1:]]
        width, height = int(lines[6].split()[1]), int(lines[7].split()[1])
    except (ValueError, IndexError):
        raise CorruptFileError(f'{path}: radar .pcd SIZE/WIDTH/HEIGHT lines unreadable: {lines[3:8]}') from None
    fields = lines[2].split()[1:]
    if tuple(fields) != NUSCENES_RADAR_FIELDS:
        raise CorruptFileError(f'{path}: radar .pcd FIELDS are {fields}, expected the 18 nuScenes fields')
    if lines[10] != 'DATA binary':
        raise CorruptFileError(f'{path}: radar .pcd must be "DATA binary", got {lines[10]!r}')
    if width < 1 or height != 1:
        raise CorruptFileError(f'{path}: radar .pcd needs WIDTH >= 1 and HEIGHT 1 (empty cloud = one NaN '
                               f'record), got WIDTH {width} HEIGHT {height}')
    record = sum(sizes)
    need = width * record
    if record != _FLOAT32_X18 and len(payload) >= width * _FLOAT32_X18:
        raise CorruptFileError(
            f'{path}: payload is {len(payload)} bytes for {width} points: {width} x 72 bytes, i.e. all 18 '
            f'fields written as float32 under a header declaring {record}-byte records (the devkit would '
            f'decode garbage without an error); write the packed records (RADAR_PCD_DTYPE)')
    if len(payload) < need:
        raise CorruptFileError(f'{path}: truncated radar .pcd: header promises {width} points x {record} '
                               f'bytes = {need} bytes, payload has {len(payload)}')
    if len(payload) == need:
        raise CorruptFileError(f'{path}: radar .pcd has no byte after the last record; the devkit parser '
                               f'requires at least one (write a trailing newline)')
    if width > 1 and record == RADAR_PCD_DTYPE.itemsize:
        head = np.frombuffer(payload, RADAR_PCD_DTYPE, count=1)
        if any(np.isnan(head[n][0]) for n in RADAR_PCD_DTYPE.names if RADAR_PCD_DTYPE[n].kind == 'f'):
            warnings.warn(DataWarning(f'{path}: the first of {width} radar records has a NaN field, which the '
                                      f'nuScenes devkit reads as an empty cloud: all {width} points are lost'),
                          stacklevel=2)
    return width


def read_radar_pcd(path) -> np.ndarray:
    """N x 18 float32 radar points of a checked .pcd, every return kept (no devkit filters)."""
    from nuscenes.utils.data_classes import RadarPointCloud
    check_radar_pcd(path)
    pc = RadarPointCloud.from_file(str(path), **ALL_RADAR_STATES)
    return np.ascontiguousarray(pc.points.T, dtype=np.float32)


def write_lidar_bin(path, points) -> None:
    """Write N x 5 lidar points (x, y, z, intensity, ring) as a nuScenes .pcd.bin (raw float32)."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, LIDAR_BIN_COLUMNS)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pts.tobytes())


def check_lidar_bin(path) -> int:
    """Number of points of a lidar .pcd.bin after checking its size; raises one error naming the file."""
    path = Path(path)
    if not str(path).endswith('.bin'):
        raise CorruptFileError(f'{path}: nuScenes lidar files end in .pcd.bin')
    if not path.is_file():
        raise SampleError(f'missing file {path}')
    size = os.path.getsize(path)
    if size < 200:
        _require_file(path)   # a small file may be a Git LFS pointer: say so rather than "bad size"
    row = 4 * LIDAR_BIN_COLUMNS
    if size % row:
        hint = ' (a multiple of 16: float32 x 4, KITTI style?)' if size % 16 == 0 else ''
        raise CorruptFileError(f'{path}: {size} bytes is not a whole number of float32 x 5 points{hint}')
    return size // row


def read_lidar_bin(path) -> np.ndarray:
    """N x 4 float32 (x, y, z, intensity) lidar points in the sensor frame, read by the devkit."""
    from nuscenes.utils.data_classes import LidarPointCloud
    check_lidar_bin(path)
    return np.ascontiguousarray(LidarPointCloud.from_file(str(path)).points.T, dtype=np.float32)
