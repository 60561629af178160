"""X-KD and D2-KD losses: hand-checked values, gradients where they must (and must not) flow, gradcheck."""
from __future__ import annotations

import contextlib
import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from xd_rcdepth_core.distill.losses import (
    bin_centres,
    d2kd_loss,
    depth_log_distribution,
    edge_aware_smoothness,
    masked_l1,
    saliency_maps,
    student_saliency,
    teacher_saliency,
    xkd_loss,
)
from xd_rcdepth_core.distill.saliency import frozen_batch_statistics
from xd_rcdepth_core.models import build_model

# ----------------------------------------------------------------------------- D2-KD


def _two_pixels():
    """Pixel 0: teacher 2.0 m, student 2.5 m; pixel 1: teacher 1.0 m, student 3.0 m. Bins: 3 over
    [0.5, 3.5] m, centres 1, 2, 3."""
    teacher = torch.tensor([2.0, 1.0], dtype=torch.float64).view(1, 1, 1, 2)
    student = torch.tensor([2.5, 3.0], dtype=torch.float64).view(1, 1, 1, 2)
    centres = bin_centres(3, 3.5, 0.5, dtype=torch.float64)
    return teacher, student, centres


def test_d2kd_hand_checked_two_pixels_three_bins():
    teacher, student, centres = _two_pixels()
    assert centres.tolist() == [1.0, 2.0, 3.0]
    # tau = 1, pixel 0: q = (e^-1, 1, e^-1) / (1 + 2 e^-1) = (0.211942, 0.576117, 0.211942)
    #                   p = (e^-1.5, e^-0.5, e^-0.5) / sum   = (0.155362, 0.422319, 0.422319)
    #                   KL(q || p) = sum q log(q / p) = 0.0986085
    # pixel 1: q = (1, e^-1, e^-2) / sum = (0.665241, 0.244728, 0.090031), p = the reverse; KL = 1.1504208
    q0 = [math.exp(-1), 1.0, math.exp(-1)]
    p0 = [math.exp(-1.5), math.exp(-0.5), math.exp(-0.5)]
    q0 = [x / sum(q0) for x in q0]
    p0 = [x / sum(p0) for x in p0]
    kl0 = sum(q * math.log(q / p) for q, p in zip(q0, p0))
    assert kl0 == pytest.approx(0.09860853250911461, rel=1e-12)
    loss = d2kd_loss(student, teacher, centres, tau=1.0)
    assert float(loss) == pytest.approx((0.09860853250911461 + 1.1504207652088825) / 2, rel=1e-6)
    # tau = 2: logits halved, KL of (0.274069, 0.451863, 0.274069) vs (0.232697, 0.383652, 0.383652) and
    # the second pixel, times tau^2 = 4.
    loss2 = d2kd_loss(student, teacher, centres, tau=2.0)
    assert float(loss2) == pytest.approx(4 * (0.026609008998791983 + 0.32015666782980645) / 2, rel=1e-6)
    # Omega = pixel 0 only.
    mask = torch.tensor([True, False]).view(1, 1, 1, 2)
    assert float(d2kd_loss(student, teacher, centres, 1.0, mask)) == pytest.approx(0.09860853250911461, rel=1e-6)


def test_d2kd_zero_for_equal_depths_and_gradient_only_to_student():
    teacher, student, centres = _two_pixels()
    assert float(d2kd_loss(teacher.clone(), teacher, centres, 1.0)) == pytest.approx(0.0, abs=1e-12)
    s = student.clone().requires_grad_(True)
    t = teacher.clone().requires_grad_(True)
    d2kd_loss(s, t, centres, 1.0).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None                        # the teacher is a constant
    logp = depth_log_distribution(student, centres, 1.0)
    assert torch.allclose(logp.exp().sum(dim=1), torch.ones(1, 1, 2, dtype=torch.float64))


def test_d2kd_gradcheck_float64():
    teacher, student, centres = _two_pixels()
    s = student.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: d2kd_loss(x, teacher, centres, 1.5), (s,))


def test_d2kd_bad_settings():
    with pytest.raises(ValueError, match='at least 2 bins'):
        bin_centres(1, 80.0)
    teacher, student, centres = _two_pixels()
    with pytest.raises(ValueError, match='temperature'):
        d2kd_loss(student, teacher, centres, 0.0)


# ----------------------------------------------------------------------------- depth terms


def test_masked_l1_and_smoothness():
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], requires_grad=True)
    gt = torch.tensor([[[[2.0, 0.0], [3.5, float('nan')]]]])
    loss = masked_l1(pred, gt, 0.01)        # valid: 2.0 and 3.5 -> (1 + 0.5) / 2
    assert float(loss.detach()) == pytest.approx(0.75)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[0, 0, 1, 1] == 0
    assert float(masked_l1(pred, torch.zeros_like(gt), 0.01).detach()) == 0.0
    flat = torch.ones(1, 1, 4, 4)
    assert float(edge_aware_smoothness(flat, torch.randn(1, 3, 4, 4))) == 0.0


# ----------------------------------------------------------------------------- X-KD


def _inputs(batch=2, height=32, width=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 3, height, width, generator=g)
    radar = torch.zeros(batch, 4, height, width)
    hit = torch.rand(batch, 1, height, width, generator=g) < 0.03
    radar[:, :1] = torch.where(hit, torch.rand(batch, 1, height, width, generator=g) * 60 + 2, radar[:, :1])
    return image, radar


@pytest.fixture(scope='module')
def student():
    torch.manual_seed(0)
    return build_model('xd_rcdepth').train()


def test_xkd_identical_networks_give_zero(student):
    # The paths training takes: student_saliency (batch statistics held constant) and teacher_saliency.
    # Both in train mode: an untrained network in eval mode (running statistics 0 / 1) gives all-zero
    # maps, which would make the check vacuous.
    teacher = copy.deepcopy(student).train()
    for p in teacher.parameters():
        p.requires_grad_(False)
    image, radar = _inputs()
    _, t_maps = teacher_saliency(teacher, image, radar)
    s_maps = student_saliency(student, image, radar)
    loss, per_layer = xkd_loss(s_maps, t_maps)
    assert set(per_layer) == {'image', 'radar', 'decoder'}
    assert all(float(m.detach().abs().sum()) > 0 for m in s_maps.values())     # non-trivial maps
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-5)


def _alpha_cancellation(out, layer='decoder'):
    """|sum_b alpha| / sum_b |alpha| of the Grad-CAM channel weights, mean over channels."""
    feat = out['taps'][layer]
    grad, = torch.autograd.grad(out['depth'].mean(dim=(1, 2, 3)).sum(), feat)
    alpha = grad.mean(dim=(2, 3))
    return float((alpha.sum(0).abs() / alpha.abs().sum(0).clamp(min=1e-30)).mean())


def test_student_saliency_is_not_cancelled_by_batchnorm(student):
    # In training mode the gradient into a BatchNorm input sums to zero per channel over the batch:
    # the decoder tap reaches the output only through BatchNorm, so plain Grad-CAM weights of the
    # training forward cancel across samples (and vanish at batch size 1). student_saliency must not.
    image, radar = _inputs(batch=4)
    assert _alpha_cancellation(student(image, radar)) < 1e-3
    with frozen_batch_statistics(student):
        assert _alpha_cancellation(student(image, radar)) > 0.1
    single = student_saliency(student, image[:1], radar[:1])
    assert all(float(m.detach().flatten(1).norm()) > 1e-3 for m in single.values())
    # The running statistics are left alone, and the activations are the training forward's.
    bn = next(m for m in student.modules() if isinstance(m, nn.BatchNorm2d))
    before = bn.running_mean.clone()
    with frozen_batch_statistics(student):
        frozen = student(image, radar)['depth']
    assert torch.equal(bn.running_mean, before)
    torch.testing.assert_close(frozen, student(image, radar)['depth'], rtol=1e-3, atol=1e-2)


def test_xkd_gradient_reaches_student_weights_through_second_order(student):
    teacher = copy.deepcopy(student).train()
    with torch.no_grad():
        for p in teacher.parameters():
            p.mul_(1 + 0.5 * torch.randn_like(p))
    for p in teacher.parameters():
        p.requires_grad_(False)
    image, radar = _inputs(seed=1)
    _, t_maps = teacher_saliency(teacher, image, radar)
    assert all(not m.requires_grad for m in t_maps.values())
    student.zero_grad(set_to_none=True)
    loss, _ = xkd_loss(saliency_maps(student(image, radar), create_graph=True), t_maps)
    assert 0 < float(loss.detach()) <= 1
    loss.backward()
    # The head sits after every tap: it reaches the maps only through d phi / d taps, i.e. the
    # second-order path that create_graph keeps.
    assert student.decoder.head.weight.grad is not None and student.decoder.head.weight.grad.abs().sum() > 0
    first_conv = next(p for n, p in student.named_parameters() if n.startswith('image_encoder'))
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_xkd_resizes_maps_of_different_sizes():
    s = torch.rand(2, 1, 4, 8, requires_grad=True)
    t = F.interpolate(s.detach(), size=(8, 16), mode='bilinear', align_corners=False)
    loss, _ = xkd_loss({'image': s}, {'image': t})
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
    loss, _ = xkd_loss({'image': s}, {'image': torch.rand(2, 1, 2, 4)})
    loss.backward()
    assert s.grad is not None
    with pytest.raises(ValueError, match='same layers'):
        xkd_loss({'image': s}, {'radar': t})


def test_xkd_leaves_out_samples_without_teacher_evidence():
    # Sample 0: orthogonal maps (loss 1). Sample 1: the teacher map is all zero -> no target, left out.
    # Sample 2: the student map is all zero against a real teacher map -> the largest loss, 1.
    s = torch.tensor([[1.0, 0.0], [0.3, 0.7], [0.0, 0.0]]).view(3, 1, 1, 2).requires_grad_(True)
    t = torch.tensor([[0.0, 2.0], [0.0, 0.0], [1.0, 1.0]]).view(3, 1, 1, 2)
    loss, _ = xkd_loss({'image': s}, {'image': t})
    assert float(loss.detach()) == pytest.approx(1.0)
    s2 = torch.tensor([[0.0, 1.0], [0.3, 0.7], [1.0, 1.0]]).view(3, 1, 1, 2)
    assert float(xkd_loss({'image': s2}, {'image': t})[0]) == pytest.approx(0.0, abs=1e-6)
    none, _ = xkd_loss({'image': s}, {'image': torch.zeros_like(t)})
    assert float(none.detach()) == 0.0 and none.requires_grad


class TinyNet(nn.Module):
    """Two 1/2-scale taps and a depth head, smooth enough (tanh, sigmoid) for gradcheck."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.w1 = nn.Parameter(torch.randn(2, 3, 3, 3, generator=g, dtype=torch.float64) * 0.5)
        self.w2 = nn.Parameter(torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64) * 0.5)
        self.w3 = nn.Parameter(torch.randn(1, 2, 3, 3, generator=g, dtype=torch.float64) * 0.5)

    def run(self, x, w1, w2, w3):
        image = torch.tanh(F.conv2d(x, w1, stride=2, padding=1))
        radar = image * image
        decoder = torch.tanh(F.conv2d(image + radar, w2, padding=1))
        up = F.interpolate(decoder, scale_factor=2, mode='bilinear', align_corners=False)
        depth = 10 * torch.sigmoid(F.conv2d(up, w3, padding=1))
        return {'depth': depth, 'taps': {'image': image, 'radar': radar, 'decoder': decoder}}

    def forward(self, x, radar=None):
        return self.run(x, self.w1, self.w2, self.w3)


def test_xkd_gradcheck_tiny_model_float64():
    net = TinyNet()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    teacher = TinyNet()
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.3 * torch.randn_like(p))
    for p in teacher.parameters():
        p.requires_grad_(False)
    _, t_maps = teacher_saliency(teacher, x, torch.zeros(1))

    def loss_of(w1, w2, w3):
        maps = saliency_maps(net.run(x, w1, w2, w3), create_graph=True)
        return xkd_loss(maps, t_maps)[0]

    weights = tuple(p.detach().clone().requires_grad_(True) for p in (net.w1, net.w2, net.w3))
    assert torch.autograd.gradcheck(loss_of, weights, eps=1e-6, atol=1e-5)


def test_saliency_valid_mean_target_uses_mask():
    net = TinyNet()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    out = net(x)
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    mask[..., :2, :2] = True
    all_maps = saliency_maps(out, ('decoder',))
    masked = saliency_maps(out, ('decoder',), mask=mask)
    assert not torch.allclose(all_maps['decoder'], masked['decoder'])


# ----------------------------------------------------------------------------- grouped convolutions

def _grouped_net():
    """A dense layer (the feature Grad-CAM looks at), then depthwise (stride 2; dilation 2), grouped
    (2 channels a group, bias) and dense layers, whose double backward the loss takes."""
    return nn.Sequential(nn.Conv2d(4, 4, 1), nn.Tanh(),
                         nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4, bias=False), nn.Tanh(),
                         nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4), nn.Tanh(),
                         nn.Conv2d(4, 6, 3, padding=1, groups=2), nn.Tanh(), nn.Conv2d(6, 1, 1))


def _second_order_grads(net, x, fast: bool, autocast=contextlib.nullcontext):
    """Parameter gradients of a Grad-CAM-like loss (the gradient w.r.t. a feature, differentiated again).
    ``autocast``: the forward and the Grad-CAM pass under it, the final backward outside, as training does."""
    from xd_rcdepth_core.distill.grouped_conv import fast_grouped_conv_grads
    net.zero_grad()
    ctx = fast_grouped_conv_grads(net) if fast else contextlib.nullcontext()
    with autocast():
        with ctx:
            feat = net[:2](x)
            out = net[2:](feat)
        (g,) = torch.autograd.grad(out.sum(), feat, create_graph=True)
        loss = ((g.mean(dim=(2, 3), keepdim=True) * feat).sum(dim=1) ** 2).mean()
    loss.backward()
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def test_fast_grouped_conv_grads_equal_pytorch_float64():
    torch.manual_seed(0)
    net = _grouped_net().double()
    x = torch.randn(3, 4, 9, 10, dtype=torch.float64)     # odd sizes: the stride-2 layer's output padding
    slow, fast = _second_order_grads(net, x, False), _second_order_grads(net, x, True)
    assert slow.keys() == fast.keys() and {'2.weight', '4.bias', '6.weight', '6.bias'} <= set(slow)
    for name in slow:
        assert torch.allclose(slow[name], fast[name], rtol=1e-10, atol=1e-12), name
    assert not any('forward' in vars(m) for m in net)    # the modules' own forward again


def test_student_xkd_gradients_unchanged_with_a_fraction_of_the_convolutions(student):
    """X-KD's double backward through the student's depthwise layers: the same gradients as PyTorch's
    own (which runs one convolution per channel) from a small number of convolution calls."""
    from torch.profiler import ProfilerActivity, profile

    from xd_rcdepth_core.distill import losses
    from xd_rcdepth_core.distill.grouped_conv import pytorch_grouped_conv_grads
    torch.manual_seed(1)
    image, radar = torch.randn(2, 3, 32, 64), torch.rand(2, 4, 32, 64) * (torch.rand(2, 1, 32, 64) < 0.1)
    teacher_maps = {k: torch.rand_like(v) for k, v in losses.student_saliency(student, image, radar).items()}

    def grads_and_calls(fast):
        student.zero_grad()
        with (contextlib.nullcontext() if fast else pytorch_grouped_conv_grads()), \
                profile(activities=[ProfilerActivity.CPU]) as prof:
            losses.xkd_loss(losses.student_saliency(student, image, radar), teacher_maps)[0].backward()
        calls = sum(e.count for e in prof.key_averages() if e.key == 'aten::convolution')
        return {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}, calls
    (slow, slow_calls), (fast, fast_calls) = grads_and_calls(False), grads_and_calls(True)
    assert slow.keys() == fast.keys() and len(slow) > 100
    for name in slow:
        scale = float(slow[name].abs().max()) + 1e-12
        assert float((slow[name] - fast[name]).abs().max()) <= 1e-4 * scale, name
    assert fast_calls * 5 < slow_calls, (fast_calls, slow_calls)


def test_fast_grouped_conv_grads_under_autocast():
    """Mixed precision (bf16 autocast on the CPU here; fp16 on CUDA alike): the forward runs in the low
    precision from fp32 inputs and weights, and every gradient comes back in its tensor's dtype."""
    torch.manual_seed(0)
    net = _grouped_net()
    x = torch.randn(2, 4, 9, 10)

    def grads(fast):
        return _second_order_grads(net, x, fast, lambda: torch.autocast('cpu', dtype=torch.bfloat16))
    slow, fast = grads(False), grads(True)
    assert slow.keys() == fast.keys()
    for name in slow:
        assert fast[name].dtype == torch.float32
        assert torch.allclose(slow[name], fast[name], rtol=0.1, atol=0.02 * float(slow[name].abs().max())), name
