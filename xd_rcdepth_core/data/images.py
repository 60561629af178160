"""Image and depth-map files: one decoder for everything, 16-bit depth PNGs (depth x 256).

All camera images are decoded with Pillow, here only, so a JPEG read by an adapter and the same bytes
read back from the cache give identical pixels (different JPEG decoders may differ by a grey level).
Depth maps follow the references' storage: uint16 = floor(depth x 256), 0 = no value, so the
resolution is 1/256 m and the range 255.99 m.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .errors import CorruptFileError, SampleError

DEPTH_SCALE = 256.0
MAX_STORED_DEPTH = 65535 / DEPTH_SCALE


def decode_image(data: bytes, name='image') -> np.ndarray:
    """H x W x 3 uint8 RGB of encoded image bytes (JPEG, PNG, ...)."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert('RGB'), dtype=np.uint8).copy()
    except Exception as exc:   # Pillow raises several types for bad data; the caller needs one
        raise CorruptFileError(f'{name}: cannot decode image ({type(exc).__name__}: {exc})') from exc


def read_image_file(path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise SampleError(f'missing file {path}')
    return decode_image(path.read_bytes(), path)


def encode_png(image: np.ndarray) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format='PNG', compress_level=1)
    return buf.getvalue()


def depth_to_uint16(depth: np.ndarray) -> np.ndarray:
    """floor(depth x 256) as uint16 (the references' save_depth); depths beyond 255.99 m are clipped."""
    d = np.nan_to_num(np.asarray(depth, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.floor(np.clip(d, 0.0, MAX_STORED_DEPTH) * DEPTH_SCALE).astype(np.uint16)


def depth_from_uint16(stored: np.ndarray) -> np.ndarray:
    return np.asarray(stored, np.float32) / np.float32(DEPTH_SCALE)


def write_depth_png(path, depth: np.ndarray) -> None:
    from PIL import Image
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(depth_to_uint16(depth)).save(path)


def read_depth_png(path) -> np.ndarray:
    """H x W float32 metres of a 16-bit (or mode 'I') depth PNG holding depth x 256."""
    from PIL import Image
    path = Path(path)
    if not path.is_file():
        raise SampleError(f'missing file {path}')
    try:
        with Image.open(path) as im:
            raw = np.asarray(im)
    except Exception as exc:
        raise CorruptFileError(f'{path}: cannot decode depth PNG ({type(exc).__name__}: {exc})') from exc
    if raw.ndim != 2:
        raise CorruptFileError(f'{path}: depth PNG must have one channel, got shape {raw.shape}')
    if raw.dtype == np.uint8:
        raise CorruptFileError(f'{path}: depth PNG is 8-bit; expected 16-bit depth x 256')
    return depth_from_uint16(raw)
