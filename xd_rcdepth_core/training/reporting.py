"""What a run reports, from rank 0 only: TensorBoard scalars and images, a JSON-lines log, tqdm.

TensorBoard (``RUN/tb``): loss/<term> and loss/total, lr, val/<range>/<metric>; images train/depth
(prediction | interpolated GT) and, with X-KD, train/saliency_<layer> (student | teacher).
``RUN/log.jsonl`` holds the same scalars, one JSON object per logged step.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..distill.saliency import normalise_map
from ..viz import colorize_depth


class RunLog:
    def __init__(self, run_dir, enabled: bool, total_steps: int, initial_step: int, progress: bool = True):
        self.enabled = enabled
        self.writer = self.bar = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm
        run_dir = Path(run_dir)
        self.writer = SummaryWriter(str(run_dir / 'tb'), purge_step=initial_step or None)
        self.jsonl = open(run_dir / 'log.jsonl', 'a', encoding='utf-8')
        self.bar = tqdm(total=total_steps, initial=initial_step, unit='step', desc='train', dynamic_ncols=True,
                        disable=not progress)

    def scalars(self, step: int, values: dict, prefix: str = '') -> None:
        if not self.enabled:
            return
        for k, v in values.items():
            if v is not None:
                self.writer.add_scalar(f'{prefix}{k}', float(v), step)
        self.jsonl.write(json.dumps({'step': step, **{f'{prefix}{k}': v for k, v in values.items()}}) + '\n')
        self.jsonl.flush()

    def val(self, step: int, result: dict) -> None:
        for key, entry in result['by_range'].items():
            self.scalars(step, {m: v for m, v in entry.items() if isinstance(v, float)}, prefix=f'val/{key}/')

    def progress(self, step: int, loss: float | None, lr: float) -> None:
        if self.enabled:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss='...' if loss is None else f'{loss:.4f}', lr=f'{lr:.2e}')

    def images(self, step: int, out: dict, batch: dict, maps=None, max_depth: float = 80.0) -> None:
        if not self.enabled:
            return
        pred = out['depth'][0, 0].detach().float().cpu().numpy()
        gt = batch['depth_interp'][0, 0].detach().float().cpu().numpy()
        pair = np.concatenate([colorize_depth(pred, max_depth), colorize_depth(gt, max_depth)], axis=1)
        self.writer.add_image('train/depth', pair, step, dataformats='HWC')
        for layer, (s, t) in _paired(maps):
            s = normalise_map(s[:1].float().cpu())[0, 0]
            t = normalise_map(t[:1].float().cpu(), size=tuple(s.shape))[0, 0]
            self.writer.add_image(f'train/saliency_{layer}', torch.cat([s, t], dim=1), step, dataformats='HW')

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.writer.close()
            self.jsonl.close()


def _paired(maps):
    if not maps:
        return []
    student, teacher = maps
    return [(k, (student[k], teacher[k])) for k in student]
