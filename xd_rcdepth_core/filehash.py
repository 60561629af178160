"""sha256 of a file, read in 1 MiB blocks: how checkpoints are identified (serving plans, imported
official weights). Torch-free, so the CPU serving path can use it."""
from __future__ import annotations

import hashlib


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()
