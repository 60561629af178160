"""Reading and writing torch files safely: plain tensors only, and never a half-written file.

``safe_load`` is ``torch.load(weights_only=True)``: a file can hold only tensors and plain containers,
so loading a foreign or malicious pickle never runs its code, and every failure names the file and
what was expected. ``atomic_save`` writes a temporary sibling and renames it.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def atomic_save(ckpt: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def safe_load(path, map_location, what: str):
    """torch.load(weights_only=True) with errors that say which file and what was expected;
    ``what`` is a noun phrase such as 'an xd_rcdepth checkpoint'."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'file not found: {path} (expected {what})')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling refused, not a torch file, truncated, ...
        first_line = (str(exc).strip().splitlines() or [''])[0]
        raise ValueError(f'not {what}: {path} cannot be read as plain tensors '
                         f'(torch.load weights_only=True: {type(exc).__name__}: {first_line})') from None
