"""A model's identity as one hash: the key of its ONNX exports and of cached teacher outputs."""
from __future__ import annotations

import hashlib
import json

import torch
import torch.nn as nn

from .registry import config_to_dict


def model_fingerprint(model: nn.Module) -> str:
    """sha256 of the model's name, config and every tensor of its state_dict (two checkpoints with the
    same weights share one key; changed weights never hit)."""
    h = hashlib.sha256()
    h.update(json.dumps([model.model_name, config_to_dict(model.config)], sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().to('cpu').contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
