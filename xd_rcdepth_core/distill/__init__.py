"""Distillation (the paper's two): explainability-aligned (X-KD) and depth-distribution (D2-KD).

    saliency.py         differentiable Grad-CAM for dense depth regression
    losses.py           depth supervision, L_XKD, L_D2KD
    teacher_targets.py  the frozen teacher's outputs computed once per training sample (offline KD)
"""
from .losses import d2kd_loss, student_saliency, teacher_saliency, xkd_loss
from .saliency import TAP_LAYERS, grad_cam

__all__ = ['TAP_LAYERS', 'grad_cam', 'student_saliency', 'teacher_saliency', 'xkd_loss', 'd2kd_loss']
