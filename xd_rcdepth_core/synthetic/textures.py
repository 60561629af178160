"""Procedural noise for surface textures, sampled in world or surface coordinates.

One tileable 1/f noise image is made once (fixed seed: textures are part of the world's look, not of
a scene's randomness) and sampled with cv2.remap, which does bilinear, wrap-around lookups in C at
any coordinates, far faster than hashing lattice noise per pixel in numpy.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

TILE = 256
_ROW = 4096        # cv2.remap needs maps shorter than 32767 per side: lay N samples out as rows of 4096


@lru_cache(maxsize=2)
def noise_tile(smooth: bool = False) -> np.ndarray:
    """TILE x TILE float32 tileable noise, zero mean and unit standard deviation: a 1/f^0.9 spectrum
    (grainy: asphalt, plaster, leaves) or, smooth, 1/f^2 (clouds, large stains)."""
    rng = np.random.default_rng(12345)
    white = rng.standard_normal((TILE, TILE))
    f = np.fft.fftfreq(TILE)
    radius = np.hypot(f[:, None], f[None, :])
    radius[0, 0] = 1.0
    spectrum = np.fft.fft2(white) / radius ** (2.0 if smooth else 0.9)
    spectrum[0, 0] = 0.0
    tile = np.real(np.fft.ifft2(spectrum))
    return ((tile - tile.mean()) / tile.std()).astype(np.float32)


def sample_noise(x, y, texels_per_metre: float, offset: float = 0.0, smooth: bool = False) -> np.ndarray:
    """Noise at surface coordinates (x, y) in metres; one tile spans TILE / texels_per_metre metres."""
    x = np.asarray(x, dtype=np.float32).ravel()
    n = x.size
    if n == 0:
        return np.zeros(0, np.float32)
    y = np.asarray(y, dtype=np.float32).ravel()
    rows = -(-n // _ROW)
    mx = np.zeros(rows * _ROW, np.float32)
    my = np.zeros(rows * _ROW, np.float32)
    # Wrap into the tile ourselves: float32 remap coordinates lose precision far from the origin.
    mx[:n] = wrap(x * np.float32(texels_per_metre) + np.float32(offset), TILE)
    my[:n] = wrap(y * np.float32(texels_per_metre) + np.float32(0.37 * offset), TILE)
    out = cv2.remap(noise_tile(smooth), mx.reshape(rows, _ROW), my.reshape(rows, _ROW), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_WRAP)
    return out.ravel()[:n]


def wrap(x, period):
    """x modulo period in [0, period): numpy's float mod/fmod are ~50x slower than this."""
    x = np.asarray(x)
    return x - np.floor(x * (1.0 / period)).astype(x.dtype, copy=False) * period


def hash01(*ints) -> np.ndarray:
    """Deterministic pseudo-random numbers in [0, 1) from integer arrays (per window, per tile)."""
    h = np.uint64(1469598103934665603)
    acc = np.full(np.broadcast(*ints).shape, h, dtype=np.uint64)
    with np.errstate(over='ignore'):
        for v in ints:
            acc ^= np.asarray(v).astype(np.int64).astype(np.uint64)
            acc *= np.uint64(1099511628211)
            acc ^= acc >> np.uint64(29)
    return (acc % np.uint64(1 << 24)).astype(np.float32) / float(1 << 24)
