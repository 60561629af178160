"""The frozen teacher's outputs for distillation, computed once per training sample (offline KD).

Online, every distillation step runs the teacher on the batch: a forward for D2-KD, a forward and a
backward to the taps for X-KD. On a CPU that is most of a step (CaFNet is 7x the student), and it is
the same work for every student trained on the same data. When a training item is a function of
(sample, flip) alone, that is full-frame crops and no colour jitter, the teacher's outputs are too:
it runs in eval mode, so each sample's depth and Grad-CAM maps do not depend on the rest of the
batch. Then they can be computed once, for both flips of every sample, and looked up; the losses are
the online ones (a test compares the two).

    targets = TeacherTargets.build(folder, teacher, dataset_for_flip, layers, xkd_target, maps=True)
    batch.update(targets.lookup(batch['name'], batch['flipped']))   # teacher_depth, teacher_maps

The file (one per teacher, split and settings; ``torch.load(weights_only=True)``) is keyed by the
teacher's weights fingerprint, so a retrained teacher never reuses stale targets.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from tqdm import tqdm

from ..models.fingerprint import model_fingerprint
from .losses import teacher_saliency, valid_depth_mask

FORMAT = 'xd_rcdepth.teacher_targets'


def _key(teacher, split: str, layers, xkd_target: str | None, min_depth: float, size) -> str:
    spec = dict(teacher=model_fingerprint(teacher), split=split, layers=list(layers or ()), target=xkd_target,
                min_depth=min_depth, size=list(size))
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


class TeacherTargets:
    """{(sample name, flipped): teacher depth (1 x H x W) and maps ({layer: 1 x h x w})}."""

    def __init__(self, names, depth: torch.Tensor, maps: dict):
        self.row = {name: i for i, name in enumerate(names)}
        self.depth, self.maps = depth, maps          # N x 2 x 1 x H x W; {layer: N x 2 x 1 x h x w}

    def lookup(self, names, flipped: torch.Tensor) -> dict:
        missing = [n for n in names if n not in self.row]
        if missing:
            raise KeyError(f'no cached teacher outputs for sample(s) {missing[:3]}: the cache changed since '
                           f'they were computed; delete the teacher_targets folder')
        rows = torch.tensor([self.row[n] for n in names])
        flips = flipped.to(torch.long).cpu()
        out = {'teacher_depth': self.depth[rows, flips]}
        if self.maps:
            out['teacher_maps'] = {k: v[rows, flips] for k, v in self.maps.items()}
        return out

    @classmethod
    def build(cls, folder, teacher, datasets, split: str, layers=None, xkd_target: str = 'mean',
              min_depth: float = 0.01, batch_size: int = 4, log=print, progress: bool = True) -> 'TeacherTargets':
        """Load the targets of this teacher and settings from ``folder``, or compute and save them.

        ``datasets`` = (unflipped, flipped) training datasets that differ only in the flip: item i of
        each is exactly what training draws for sample i. ``layers`` None: depth only (D2-KD)."""
        first = datasets[0][0]
        size = tuple(first['image'].shape[-2:])
        key = _key(teacher, split, layers, xkd_target if layers else None, min_depth, size)
        path = Path(folder) / f'{split}-{key}.pt'
        if path.is_file():
            data = torch.load(path, map_location='cpu', weights_only=True)
            if data.get('format') == FORMAT:
                log(f'teacher targets: {path}')
                return cls(data['names'], data['depth'], data['maps'])
        log(f'teacher targets: computing {path} ({len(datasets[0])} samples x 2 flips)')
        names = []
        teacher = teacher.eval()
        device = next(teacher.parameters()).device
        n = len(datasets[0])
        per_flip = []
        for flip, dataset in enumerate(datasets):
            d_rows, m_rows = [], {}
            bar = tqdm(range(0, n, batch_size), desc=f'teacher targets (flip {flip})', disable=not progress,
                       leave=False)
            for start in bar:
                items = [dataset[i] for i in range(start, min(start + batch_size, n))]
                if flip == 0:
                    names += [it['name'] for it in items]
                if any(bool(it['flipped']) != bool(flip) for it in items):
                    raise ValueError('teacher targets: the datasets must be (unflipped, flipped)')
                image = torch.stack([it['image'] for it in items]).to(device)
                radar = torch.stack([it['radar'] for it in items]).to(device)
                if layers:
                    mask = None
                    if xkd_target == 'valid_mean':
                        mask = valid_depth_mask(torch.stack([it['depth_interp'] for it in items]), min_depth).to(device)
                    out, batch_maps = teacher_saliency(teacher, image, radar, layers, mask)
                    for k, v in batch_maps.items():
                        m_rows.setdefault(k, []).append(v.cpu())
                else:
                    with torch.no_grad():
                        out = teacher(image, radar)
                d_rows.append(out['depth'].detach().float().cpu())
            per_flip.append((torch.cat(d_rows), {k: torch.cat(v) for k, v in m_rows.items()}))
        depth = torch.stack([per_flip[0][0], per_flip[1][0]], dim=1)
        maps = {k: torch.stack([per_flip[0][1][k], per_flip[1][1][k]], dim=1) for k in per_flip[0][1]}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
        torch.save({'format': FORMAT, 'names': names, 'depth': depth, 'maps': maps,
                    'teacher_fingerprint': model_fingerprint(teacher)}, tmp)
        os.replace(tmp, path)    # atomic: a killed run leaves no half file
        return cls(names, depth, maps)
