"""Grouped convolutions whose second derivative costs one kernel per layer, not one per group.

X-KD differentiates the student's Grad-CAM maps (gradients of depth w.r.t. its features) w.r.t. its
weights: a double backward. PyTorch computes the double backward of a grouped convolution
(``_convolution_double_backward``) one group at a time, so each depthwise 3x3 of MobileNetV2 (up to
960 channels) becomes hundreds of tiny convolutions. Measured: 10 k convolution calls per X-KD step
for 45 depthwise layers. On a CPU tiny convolutions are cheap (this saves about 5 % of a step); on
a GPU every call is a kernel launch, and an X-KD step took 660 ms where it now takes 184 (an H200,
batch 4 at 96x192; benchmarks/kd_step.py).

``fast_grouped_conv_grads(model)`` swaps, within the block, each grouped ``nn.Conv2d``'s forward for
one whose backward is written with ordinary ops: the input gradient as a transposed convolution
(differentiable; its own backward is a single grouped convolution backward), the weight gradient
by ``convolution_backward`` without a graph. The weight gradient of the Grad-CAM pass is never
differentiated again (the maps depend on the features' gradients only), and the final backward is
first order, so both stay exact. The values are the same as PyTorch's (a test compares the X-KD
gradients of every parameter); only the number of kernels changes.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


class _GroupedConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, dilation, groups, None if bias is None else bias.dtype)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups, bias_dtype = ctx.conf
        # Under autocast the forward ran in grad_out's dtype (fp16 / bf16) from fp32 inputs and
        # weights: compute in that dtype, and hand each gradient back in its input's dtype.
        dtype = grad_out.dtype
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            # the output size of the transposed convolution is ambiguous by up to stride - 1 rows
            extra = [x.shape[2 + i] - ((grad_out.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                                       + dilation[i] * (weight.shape[2 + i] - 1) + 1) for i in range(2)]
            grad_x = F.conv_transpose2d(grad_out, weight.to(dtype), None, stride, padding, extra, groups,
                                        dilation).to(x.dtype)
        if ctx.needs_input_grad[1]:
            with torch.no_grad():
                grad_w = torch.ops.aten.convolution_backward(
                    grad_out, x.to(dtype), weight.to(dtype), None, stride, padding, dilation, False, [0, 0],
                    groups, [False, True, False])[1].to(weight.dtype)
        if bias_dtype is not None and ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, 2, 3)).to(bias_dtype)
        return grad_x, grad_w, grad_b, None, None, None, None


def _swappable(module: nn.Module) -> bool:
    return (type(module) is nn.Conv2d and module.groups > 1 and module.padding_mode == 'zeros'
            and not isinstance(module.padding, str))


_PYTORCH_ONLY = 0   # > 0 inside pytorch_grouped_conv_grads blocks


@contextlib.contextmanager
def pytorch_grouped_conv_grads():
    """Within the block fast_grouped_conv_grads changes nothing: PyTorch's own double backward (one
    convolution per group), for the benchmark and the tests that compare the two paths."""
    global _PYTORCH_ONLY
    _PYTORCH_ONLY += 1
    try:
        yield
    finally:
        _PYTORCH_ONLY -= 1


def fast_path_enabled() -> bool:
    """False inside a pytorch_grouped_conv_grads block."""
    return _PYTORCH_ONLY == 0


@contextlib.contextmanager
def fast_grouped_conv_grads(model: nn.Module):
    """Within the block, the model's grouped convolutions are differentiated twice in one kernel per
    layer (see the module docstring). Outside it the model is untouched (export, inference)."""
    swapped = [m for m in model.modules() if _swappable(m)] if fast_path_enabled() else []
    for m in swapped:
        m.forward = (lambda x, m=m: _GroupedConv2d.apply(x, m.weight, m.bias, m.stride, m.padding, m.dilation,
                                                         m.groups))
    try:
        yield model
    finally:
        for m in swapped:
            del m.forward        # back to the class's forward
