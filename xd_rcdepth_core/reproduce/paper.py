"""The XD-RCDepth paper's numbers that `reproduce` puts beside its own, in one place.

Source: docs/paper.md (the project's restatement of arXiv 2510.13565): its "Results (nuScenes, 80 m)"
table, the "Fusion ablation" table under Student, the "Distillation ablation" and "Runtime" notes
under Results, and "Setup". Everything is at 80 m on nuScenes; the paper gives no absolute numbers at
50 and 70 m, only the relative MAE reduction from distillation there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

SOURCE = 'docs/paper.md'

# The metrics the paper's tables report (names as metrics.METRIC_NAMES).
PAPER_METRICS = ('mae', 'rmse', 'abs_rel', 'd1')
METRIC_TITLES = {'mae': 'MAE', 'rmse': 'RMSE', 'abs_rel': 'AbsRel', 'd1': 'δ1', 'd2': 'δ2', 'd3': 'δ3',
                 'log10': 'log10', 'sq_rel': 'SqRel', 'rmse_log': 'RMSElog', 'silog': 'SIlog'}


@dataclass(frozen=True)
class PaperRow:
    label: str
    params_m: float                       # parameters in millions, as the paper counts them
    metrics: dict = field(default_factory=dict)   # 80 m, PAPER_METRICS
    runtime_s: Optional[float] = None     # seconds per frame (Results table)
    section: str = ''                     # where in docs/paper.md


def _row(label, params_m, mae, rmse, abs_rel, d1, runtime_s=None, section='Results (nuScenes, 80 m)'):
    return PaperRow(label, params_m, {'mae': mae, 'rmse': rmse, 'abs_rel': abs_rel, 'd1': d1}, runtime_s, section)


# docs/paper.md "Results (nuScenes, 80 m)"
RESULTS = {
    'radarnet': _row('RadarNet', 22.8, 2.179, 4.899, 0.106, 0.894, 0.378),
    'cafnet': _row('CaFNet (teacher)', 62.25, 1.763, 4.184, 0.083, 0.921, 0.132),
    'lircdepth': _row('LiRCDepth', 12.65, 2.152, 4.801, 0.105, 0.892, 0.069),
    'xd_rcdepth_none': _row('XD-RCDepth, no distillation', 8.89, 2.232, 4.897, 0.114, 0.887, 0.015),
    'xd_rcdepth_both': _row('XD-RCDepth, X-KD + D2-KD', 8.89, 2.054, 4.676, 0.102, 0.901, 0.015),
}

# docs/paper.md "Fusion ablation" (nuScenes, 80 m, trained without distillation)
FUSION = {
    'add': _row('addition', 8.74, 2.248, 4.903, 0.115, 0.886, section='Fusion ablation'),
    'concat': _row('concatenation', 10.94, 2.208, 4.802, 0.114, 0.888, section='Fusion ablation'),
    'attention': _row('attention', 9.48, 2.266, 4.901, 0.115, 0.885, section='Fusion ablation'),
    'film': _row('FiLM (chosen)', 8.89, 2.232, 4.897, 0.114, 0.887, section='Fusion ablation'),
}

# docs/paper.md "Distillation ablation": MAE at 80 m by the distillation used, and the relative MAE
# reduction of X-KD + D2-KD over none at each range (percent).
DISTILLATION_MAE_80 = {'none': 2.232, 'xkd': 2.114, 'd2kd': 2.132, 'both': 2.054}
DISTILLATION_REDUCTION_PERCENT = {'50': 7.91, '70': 7.96, '80': 7.97}

# docs/paper.md "Runtime": CaFNet 0.132 s, XD-RCDepth 0.015 s per frame (the paper also says "15 FPS"
# for the student, which disagrees with 0.015 s: docs/reference.md Part A 9 q8).
TEACHER_OVER_STUDENT_RUNTIME = RESULTS['cafnet'].runtime_s / RESULTS['xd_rcdepth_none'].runtime_s

# docs/paper.md "Setup": one NVIDIA L40 GPU, batch size 8.
SETUP = {'gpu': 'NVIDIA L40', 'gpus': 1, 'batch_size': 8}

__all__ = ['SOURCE', 'PAPER_METRICS', 'METRIC_TITLES', 'PaperRow', 'RESULTS', 'FUSION', 'DISTILLATION_MAE_80',
           'DISTILLATION_REDUCTION_PERCENT', 'TEACHER_OVER_STUDENT_RUNTIME', 'SETUP']
