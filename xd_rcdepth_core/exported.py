"""Exported model files (ONNX, TorchScript): the metadata written into them and read back.

Apart from export.py (how a model is exported and verified) so that the backends and the pipeline,
which only read exported files, do not depend on the exporter. Reading an ONNX file's metadata needs
no torch (the node serves ONNX files without it).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from .config import IMAGENET_MEAN, IMAGENET_STD

FORMATS = ('onnx', 'torchscript')
DEFAULT_OPSET = 17            # TensorRT 8.5+ parses up to 17; ORT 1.31 runs 7..23
INPUT_NAMES = ('image', 'radar')
OUTPUT_NAMES = ('depth',)
METADATA_FILE = 'xd_rcdepth.json'   # TorchScript: the metadata rides in the archive's extra files


def metadata(model, spec, extra: dict | None = None) -> dict:
    """Everything a consumer needs to feed the graph; values are JSON-able (ONNX stores strings)."""
    import torch

    from .models.blocks import NETWORK_STRIDE
    from .models.fingerprint import model_fingerprint
    from .models.registry import config_to_dict
    cfg = model.config
    return {
        'xd_rcdepth.format': 1,
        'model_name': model.model_name,
        'model_config': config_to_dict(cfg),
        'max_depth': float(cfg.max_depth), 'min_depth': float(cfg.min_depth),
        'input_names': list(INPUT_NAMES), 'output_names': list(OUTPUT_NAMES),
        'input_size': None if spec.dynamic else [spec.height, spec.width],
        'trace_size': [spec.height, spec.width],
        'input_multiple': NETWORK_STRIDE if spec.dynamic else 1,
        'dynamic': spec.dynamic, 'precision': 'fp16' if spec.fp16 else 'fp32',
        'opset': spec.opset if spec.format == 'onnx' else None,
        'radar_channels': int(cfg.radar_channels),
        'image_normalisation': {'mean': list(IMAGENET_MEAN), 'std': list(IMAGENET_STD), 'scale': 1 / 255},
        'weights_sha256': model_fingerprint(model),
        'torch': torch.__version__,
        **(extra or {}),
    }


def read_metadata(path) -> dict:
    """The metadata dict of an exported file (ONNX metadata_props or TorchScript extra file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'file not found: {path} (expected an exported xd_rcdepth model)')
    if path.suffix == '.onnx' or _is_onnx(path):
        import onnx
        proto = onnx.load(str(path), load_external_data=False)
        meta = {p.key: _json_or_text(p.value) for p in proto.metadata_props}
    else:
        import torch
        files = {METADATA_FILE: ''}
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', FutureWarning)   # torch.jit is deprecated upstream; still loads
            torch.jit.load(str(path), map_location='cpu', _extra_files=files)
        meta = json.loads(files[METADATA_FILE] or '{}')
    if 'model_name' not in meta:
        raise ValueError(f'{path} is not an xd_rcdepth export (no model_name in its metadata)')
    return meta


def _json_or_text(value: str):
    """Our values are JSON; tools that rewrite a file (ONNX Runtime's quantiser) may add plain strings."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _is_onnx(path: Path) -> bool:
    with open(path, 'rb') as f:
        return not f.read(4).startswith(b'PK')   # TorchScript files are zip archives


def default_cache_dir() -> Path:
    """$XD_RCDEPTH_CACHE, else $XDG_CACHE_HOME/xd_rcdepth, else ~/.cache/xd_rcdepth."""
    if os.environ.get('XD_RCDEPTH_CACHE'):
        return Path(os.environ['XD_RCDEPTH_CACHE'])
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'xd_rcdepth'
