"""Distillation: differentiable Grad-CAM saliency (X-KD) and depth-distribution losses (D2-KD)."""
