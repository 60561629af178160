"""Any camera: a checkpoint records its training camera, and DepthEstimator runs every input at that
camera's focal length, so the same scene seen through another lens or resolution gets the same depth."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from xd_rcdepth_core.config import NUSCENES_CAM_FRONT
from xd_rcdepth_core.conventions import InputConventions, training_conventions
from xd_rcdepth_core.geometry import scale_intrinsics
from xd_rcdepth_core.inputs import network_size
from xd_rcdepth_core.models import build_model, load_model, save_checkpoint
from xd_rcdepth_core.pipeline import DepthEstimator
from xd_rcdepth_core.synthetic import WorldSettings, generate_sequence
from xd_rcdepth_ros.resources import shipped_model

pytestmark = pytest.mark.usefixtures('one_thread')
H, W = 224, 400            # the reference camera: nuScenes CAM_FRONT scaled to 400 px wide
SEED, FRAME = 5, 6


def _frame(height, width, zoom=1.0, supersample=1):
    """The test scene through a camera of this size and zoom; ``supersample``: rendered at that many times
    the pixels and area-averaged down, as a lens low-passes a real image (a direct render aliases, and
    aliasing differs with resolution in a way no camera shows)."""
    camera = dataclasses.replace(NUSCENES_CAM_FRONT, fx=NUSCENES_CAM_FRONT.fx * zoom, fy=NUSCENES_CAM_FRONT.fy * zoom)
    frame = next(generate_sequence(SEED, 1, height * supersample, width * supersample, accumulate=0,
                                   start_frame=FRAME, settings=WorldSettings(camera=camera)))
    if supersample == 1:
        return frame
    image = cv2.resize(frame.image, (width, height), interpolation=cv2.INTER_AREA)
    return frame.replace(image=image, K=scale_intrinsics(frame.K, 1 / supersample, 1 / supersample),
                         depth_sparse=None, depth_accumulated=None, depth_interp=None, depth_dense=None)


@pytest.fixture(scope='module')
def reference():
    return _frame(H, W)


@pytest.fixture(scope='module')
def shipped():
    """The shipped checkpoint's network, told it was trained at this test's reference focal length."""
    model, _ = load_model(shipped_model())
    return model


def _median_rel(a, b, mask=None):
    ok = np.isfinite(a) & np.isfinite(b) & (b > 1)
    if mask is not None:
        ok &= mask
    return float(np.median(np.abs(a[ok] - b[ok]) / b[ok]))


def test_conventions_round_trip_and_checks():
    c = InputConventions(focal=633.2, image_size=(450, 800))
    assert InputConventions.from_dict(c.to_dict()) == c
    assert InputConventions.from_dict(None) == InputConventions()
    assert c.scale_for(633.2 * 2) == pytest.approx(0.5) and c.scale_for(640.0) == 1.0   # within 2 %: as is
    assert InputConventions().scale_for(1000.0) == 1.0                                   # unknown camera
    with pytest.raises(ValueError, match='focal'):
        InputConventions(focal=-1.0)
    with pytest.raises(ValueError, match='unknown input convention'):
        InputConventions.from_dict({'focal': 1.0, 'colour': 'red'})


def test_network_size_follows_the_training_camera(reference):
    conv = training_conventions(reference.K, H, W)
    big = _frame(2 * H, 2 * W)                     # same lens, twice the pixels: run at the trained scale
    assert network_size(big, None, conv) == (H, W)
    assert network_size(big, (64, 96), conv) == (64, 96)       # an explicit size wins
    assert network_size(big, None, None) == (2 * H, 2 * W)      # unknown camera: the image's own size


def test_a_checkpoint_records_and_the_estimator_honours_the_camera(tmp_path, reference):
    torch.manual_seed(0)
    model = build_model('xd_rcdepth', decoder_channels=[32, 16, 16, 8, 8], bottleneck_channels=32, daspp_growth=16)
    conv = training_conventions(reference.K, H, W)
    path = save_checkpoint(tmp_path / 'm.pt', model, extra={'inputs': conv.to_dict()})
    est = DepthEstimator.from_checkpoint(path, device='cpu')
    assert est.conventions == conv
    big = _frame(2 * H, 2 * W)
    image, radar, _ = est.prepare(big)
    assert image.shape[-2:] == (H, W) and radar.shape[-2:] == (H, W)
    assert est.predict(big).depth.shape == (2 * H, 2 * W)       # back at the input's pixels


def test_the_same_scene_through_two_cameras_gives_the_same_depth(shipped):
    """The scene at the reference camera, then at 1.5x the resolution (same lens), then through a 1.5x
    longer lens (same resolution, narrower view): the depth of the same scene points agrees within a few
    percent when the estimator maps each input to the training camera, and far better than without it.

    Measured with the shipped checkpoint (trained briefly, on synthetic renders only): median relative
    difference 5.3 % (same lens) and 9.9 % (longer lens: the network sees a third less context) mapped,
    15 % and 17 % unmapped. The bounds leave a little room for CPU-to-CPU arithmetic."""
    reference = _frame(H, W, supersample=2)
    conv = training_conventions(reference.K, H, W)
    mapped = DepthEstimator(shipped, device='cpu', conventions=conv)
    unmapped = DepthEstimator(shipped, device='cpu')
    ref_depth = mapped.predict(reference).depth

    fine = _frame(int(H * 1.5), int(W * 1.5), supersample=2)
    up = cv2.resize(ref_depth, (fine.width, fine.height), interpolation=cv2.INTER_NEAREST)
    err_mapped = _median_rel(mapped.predict(fine).depth, up)
    err_unmapped = _median_rel(unmapped.predict(fine).depth, up)
    assert err_mapped < 0.06 and err_mapped < 0.6 * err_unmapped, (err_mapped, err_unmapped)

    zoomed = _frame(H, W, zoom=1.5, supersample=2)
    # pixel (u, v) of the zoomed image sees what pixel K_ref K_zoom^-1 (u, v) of the reference sees
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    Kz, Kr = zoomed.K, reference.K
    map_u = ((u - Kz[0, 2]) / Kz[0, 0] * Kr[0, 0] + Kr[0, 2]).astype(np.float32)
    map_v = ((v - Kz[1, 2]) / Kz[1, 1] * Kr[1, 1] + Kr[1, 2]).astype(np.float32)
    ref_in_zoom = cv2.remap(ref_depth, map_u, map_v, cv2.INTER_NEAREST, borderValue=float('nan'))
    err_mapped = _median_rel(mapped.predict(zoomed).depth, ref_in_zoom)
    err_unmapped = _median_rel(unmapped.predict(zoomed).depth, ref_in_zoom)
    assert err_mapped < 0.11 and err_mapped < 0.8 * err_unmapped, (err_mapped, err_unmapped)
