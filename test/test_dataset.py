"""The torch Dataset over the cache: crop, flip, colour jitter, evaluation window, tensor layout."""
import cv2
import numpy as np
import pytest
import torch

from xd_rcdepth_core.config import IMAGENET_MEAN, IMAGENET_STD, NUSCENES_CAM_FRONT
from xd_rcdepth_core.data.cache import CacheIndex, sample_path, write_index, write_sample
from xd_rcdepth_core.data.dataset import AugmentConfig, RadarDepthDataset, eval_window
from xd_rcdepth_core.data.prepare import prepare
from xd_rcdepth_core.data.zju import ZJU_CROP_ROWS
from xd_rcdepth_core.frame import Frame
from xd_rcdepth_core.geometry import backproject_pixels
from xd_rcdepth_core.radar import encode_frame_radar
from xd_rcdepth_core.training.synthetic_cache import make_synthetic_cache

H, W = 90, 160
K = NUSCENES_CAM_FRONT.intrinsics(H, W)
RADAR_PIXELS = [(10, 20, 12.0), (40, 50, 30.0), (150, 80, 8.0), (100, 70, 20.0)]   # (u, v, depth)


def make_frame(i: int, accumulated: bool = True) -> Frame:
    rows, cols = np.mgrid[0:H, 0:W]
    image = np.stack([cols * 255 // (W - 1), rows * 255 // (H - 1), np.full_like(rows, 20 * i)], -1).astype(np.uint8)
    # depth_interp encodes the pixel position: col + 1 + row / 128 (exact after the x256 storage)
    interp = (cols + 1 + rows / 128).astype(np.float32)
    sparse = np.where((rows + cols) % 7 == 0, interp, 0).astype(np.float32)
    u, v, d = (np.array(c, float) for c in zip(*RADAR_PIXELS))
    xyz = backproject_pixels(u, v, d, K)
    radar = np.concatenate([xyz, np.stack([np.full(4, 5.0), np.full(4, 7.0), np.full(4, 2.0)], 1)], 1)
    return Frame(image=image, K=K, radar=radar, radar_fields=('x', 'y', 'z', 'rcs', 'vx', 'vy'), name=f'f{i}',
                 depth_sparse=sparse, depth_interp=interp,
                 depth_accumulated=np.where(sparse > 0, sparse, 0).astype(np.float32) if accumulated else None)


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp('cache')
    names = []
    for i in range(3):
        f = make_frame(i, accumulated=i != 2)
        write_sample(sample_path(root, 'train', f.name), f, {})
        names.append(f.name)
    write_index(root, {'train': names}, {'train': {'dataset': 'test'}})
    return root


def unnormalise(image):
    return image.permute(1, 2, 0).numpy() * np.float32(IMAGENET_STD) + np.float32(IMAGENET_MEAN)


def offsets(item):
    """(top, left) of a crop, decoded from depth_interp (and whether it was flipped)."""
    d = item['depth_interp'][0].numpy()
    flipped = d[0, 0] > d[0, -1]
    first = d[0, -1] if flipped else d[0, 0]
    return int(round((first - int(first)) * 128)), int(first) - 1, flipped


def test_eval_drops_top_rows_to_a_multiple_of_32(cache):
    ds = RadarDepthDataset(cache, 'train', train=False)
    assert len(ds) == 3 and eval_window(900, 1600) == (4, 896, 1600)
    item = ds[0]
    f = make_frame(0)
    assert item['image'].shape == (3, 64, 160) and item['radar'].shape == (4, 64, 160)
    for key in ('depth_interp', 'depth_sparse', 'depth_accumulated'):
        assert item[key].shape == (1, 64, 160) and item[key].dtype == torch.float32
    np.testing.assert_array_equal(item['depth_interp'][0].numpy(), f.depth_interp[26:])
    np.testing.assert_allclose(unnormalise(item['image']), f.image[26:] / 255.0, atol=1e-5)
    np.testing.assert_allclose(item['K'].numpy(), K - [[0, 0, 0], [0, 0, 26], [0, 0, 0]], atol=1e-4)
    radar, _ = encode_frame_radar(f)
    np.testing.assert_allclose(item['radar'].permute(1, 2, 0).numpy(), radar[26:], atol=1e-5)
    assert item['name'] == 'f0'
    assert torch.count_nonzero(ds[2]['depth_accumulated']) == 0       # a map the sample lacks is zeros


def test_random_crop_moves_k_with_the_window(cache):
    ds = RadarDepthDataset(cache, 'train', augment=AugmentConfig(crop=(64, 96), flip_p=0, color_p=0))
    torch.manual_seed(0)
    seen = set()
    for _ in range(6):
        item = ds[1]
        top, left, flipped = offsets(item)
        assert not flipped and item['image'].shape == (3, 64, 96)
        seen.add((top, left))
        f = make_frame(1)
        np.testing.assert_allclose(unnormalise(item['image']), f.image[top:top + 64, left:left + 96] / 255.0,
                                   atol=1e-5)
        np.testing.assert_allclose(item['K'].numpy()[:2, 2], [K[0, 2] - left, K[1, 2] - top], atol=1e-4)
        radar, _ = encode_frame_radar(f)
        np.testing.assert_allclose(item['radar'].permute(1, 2, 0).numpy(), radar[top:top + 64, left:left + 96])
    assert len(seen) > 1


@pytest.mark.parametrize('negate', [False, True])
def test_flip_mirrors_everything_and_vy_only_on_request(cache, negate):
    cfg = AugmentConfig(crop=(64, 96), flip_p=1.0, color_p=0, flip_negates_lateral_velocity=negate)
    torch.manual_seed(1)
    item = RadarDepthDataset(cache, 'train', augment=cfg)[0]
    top, left, flipped = offsets(item)
    assert flipped
    f = make_frame(0)
    window = (slice(top, top + 64), slice(left, left + 96))
    np.testing.assert_array_equal(item['depth_sparse'][0].numpy(), f.depth_sparse[window][:, ::-1])
    np.testing.assert_allclose(unnormalise(item['image']), f.image[window][:, ::-1] / 255.0, atol=1e-5)
    assert item['K'][0, 2].item() == pytest.approx(95 - (K[0, 2] - left), abs=1e-4)
    radar = item['radar'].permute(1, 2, 0).numpy()
    hit = radar[..., 0] > 0
    assert hit.any()
    assert np.all(radar[hit, 2] == 7.0)                        # vx (longitudinal): never changed
    assert np.all(radar[hit, 3] == (-2.0 if negate else 2.0))  # vy (lateral): negated only on request
    expected, _ = encode_frame_radar(f)
    np.testing.assert_array_equal(hit, expected[window][:, ::-1][..., 0] > 0)


def test_colour_jitter_stays_in_range_and_is_off_at_p0(cache):
    base = RadarDepthDataset(cache, 'train', augment=AugmentConfig(crop=(64, 96), flip_p=0, color_p=0))
    jit = RadarDepthDataset(cache, 'train', augment=AugmentConfig(crop=(64, 96), flip_p=0, color_p=1.0))
    torch.manual_seed(3)
    a = base[1]
    torch.manual_seed(3)
    b = jit[1]
    assert offsets(a)[:2] == offsets(b)[:2]
    ia, ib = unnormalise(a['image']), unnormalise(b['image'])
    assert not np.allclose(ia, ib)
    assert ib.min() >= -1e-5 and ib.max() <= 1 + 1e-5
    # gamma, brightness and gain each within [0.9, 1.1]: x -> (x ** g) * b * c, so for x in (0.3, 0.7)
    # the factor x ** (g - 1) * b * c lies within [0.9 ** 2 * 0.3 ** 0.1, 1.1 ** 2 * 0.3 ** -0.1]
    mid = (ia > 0.3) & (ia < 0.7) & (ib < 1.0)
    ratio = ib[mid] / ia[mid]
    assert ratio.min() > 0.9 ** 2 * 0.3 ** 0.1 - 1e-4 and ratio.max() < 1.1 ** 2 * 0.3 ** -0.1 + 1e-4


def test_loader_batches_and_crop_too_big(cache):
    ds = RadarDepthDataset(cache, 'train', augment=AugmentConfig(crop=(64, 128)))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch['image'].shape == (2, 3, 64, 128) and batch['radar'].shape == (2, 4, 64, 128)
    assert batch['K'].shape == (2, 3, 3) and batch['name'] == ['f0', 'f1']
    with pytest.raises(ValueError, match=r'crop 352 x 704 is larger than the 90 x 160'):
        RadarDepthDataset(cache, 'train')[0]
    with pytest.raises(KeyError, match='split'):
        RadarDepthDataset(cache, 'val')


def test_zju_eval_keeps_all_rows_of_the_crop(tmp_path):
    """RadarCam-Depth evaluates all 300 rows of its 1280 x 300 crop: no cut to 288 (nuScenes keeps its
    references' 900 -> 896: test_eval_drops_top_rows_to_a_multiple_of_32)."""
    from test_zju import write_zju_frames
    write_zju_frames(tmp_path / 'zju', n=2, height=720, width=1280)
    prepare('zju', tmp_path / 'zju', out=tmp_path / 'cache', options={'crop_rows': ZJU_CROP_ROWS}, splits=['train'],
            progress=False, log=lambda *_: None)
    assert CacheIndex(tmp_path / 'cache').eval_multiple('train') == 0
    item = RadarDepthDataset(tmp_path / 'cache', 'train', train=False)[0]
    frame = CacheIndex(tmp_path / 'cache').frame('train', 0)
    assert item['image'].shape == (3, 300, 1280) and item['depth_sparse'].shape == (1, 300, 1280)
    np.testing.assert_array_equal(item['depth_sparse'][0].numpy(), frame.depth_sparse)
    np.testing.assert_allclose(item['K'].numpy(), frame.K, atol=1e-4)
    # An explicit multiple still cuts (300 -> 288, 12 top rows) for whoever asks for it.
    assert RadarDepthDataset(tmp_path / 'cache', 'train', train=False, multiple=32)[0]['image'].shape == (3, 288, 1280)
    assert eval_window(300, 1280, 0) == (0, 300, 1280) and eval_window(300, 1280) == (12, 288, 1280)


def test_extrinsic_jitter_moves_the_radar_reproducibly(tmp_path):
    """data.extrinsic_jitter: each training item's radar is projected through perturbed extrinsics,
    drawn from the item's RNG (so a seed gives the same items); off by default."""
    cache = make_synthetic_cache(tmp_path, {'train': 1}, frames=1, size=(96, 192), log=lambda *a: None)
    still = dict(crop=(96, 192), flip_p=0.0, color_p=0.0)

    def radar(jitter, seed):
        torch.manual_seed(seed)
        ds = RadarDepthDataset(cache, 'train', train=True, augment=AugmentConfig(**still, extrinsic_jitter=jitter))
        return ds[0]['radar'][0]
    plain = radar((0.0, 0.0), 0)
    assert torch.equal(plain, radar((0.0, 0.0), 1))
    moved = radar((2.0, 0.2), 0)
    assert not torch.equal(plain, moved) and torch.equal(moved, radar((2.0, 0.2), 0))
    assert (moved > 0).sum() >= 0.8 * (plain > 0).sum()          # the points move, they are not lost


# --- issue 14: canonical focal length, stronger photometric jitter ------------------------------------

def _plain(cache, **augment):
    return RadarDepthDataset(cache, 'train', train=False, multiple=0, augment=AugmentConfig(**augment))


@pytest.mark.parametrize('scale', [0.5, 1.5])
def test_canonical_focal_resizes_image_k_radar_and_depth_together(cache, scale):
    f = make_frame(0)
    item = _plain(cache, canonical_focal=scale * K[0, 0])[0]
    h, w = round(H * scale), round(W * scale)
    assert item['image'].shape == (3, h, w) and item['radar'].shape == (4, h, w)
    Kn = item['K'].numpy()
    assert Kn[0, 0] == pytest.approx(scale * K[0, 0], rel=1e-4) and Kn[1, 1] == pytest.approx(scale * K[1, 1], rel=1e-4)
    np.testing.assert_allclose(Kn[:2, 2], scale * (K[:2, 2] + 0.5) - 0.5, atol=1e-3)
    # the radar lands where its points project through the new K, with the same depths
    radar = item['radar'][0].numpy()
    for u, v, d in RADAR_PIXELS:
        un, vn = round(scale * (u + 0.5) - 0.5), round(scale * (v + 0.5) - 0.5)
        assert radar[vn, un] == pytest.approx(d, rel=1e-4)
    assert np.count_nonzero(radar) == len(RADAR_PIXELS)
    # sparse maps: every value is an original one, moved with its pixel, none invented
    sparse = item['depth_sparse'][0].numpy()
    vs, us = np.nonzero(sparse)
    assert set(np.round(sparse[vs, us], 4)) <= set(np.round(f.depth_sparse[f.depth_sparse > 0], 4))
    # depth_interp encodes (row, col): each new pixel holds the value of the source pixel under it
    interp = item['depth_interp'][0].numpy()
    cols = np.floor(interp) - 1
    expected_cols = np.clip(np.floor((np.arange(w) + 0.5) / scale), 0, W - 1)
    np.testing.assert_allclose(cols[h // 2], expected_cols, atol=1)
    assert np.all(interp > 0)
    # each source point moves to its pixel under the new K; where several meet, the nearest stays
    v0, u0 = np.nonzero(f.depth_sparse)
    target = np.rint(scale * (v0 + 0.5) - 0.5).astype(int) * w + np.rint(scale * (u0 + 0.5) - 0.5).astype(int)
    nearest = {}
    for t, d in zip(target, f.depth_sparse[v0, u0]):
        nearest[t] = min(d, nearest.get(t, np.inf))
    assert sorted(nearest) == sorted(vs * w + us)
    np.testing.assert_array_equal([nearest[t] for t in vs * w + us], sparse[vs, us])
    if scale > 1:       # upscaled: the same points, never duplicated
        assert len(vs) == np.count_nonzero(f.depth_sparse)


def test_canonical_focal_then_random_crop(cache):
    ds = RadarDepthDataset(cache, 'train', augment=AugmentConfig(crop=(96, 160), flip_p=0, color_p=0,
                                                                 canonical_focal=1.25 * K[0, 0]))
    item = ds[1]
    assert item['image'].shape == (3, 96, 160)
    assert item['K'][0, 0].item() == pytest.approx(1.25 * K[0, 0], rel=1e-3)
    with pytest.raises(ValueError, match='canonical focal'):
        RadarDepthDataset(cache, 'train', augment=AugmentConfig(crop=(64, 96), canonical_focal=0.5 * K[0, 0]))[0]


def test_defaults_draw_what_they_drew_before(cache):
    """The new settings off draw no random number: items equal the references' augmentation's."""
    old = AugmentConfig(crop=(64, 96), color_p=1.0)
    new = AugmentConfig(crop=(64, 96), color_p=1.0, contrast=(1.0, 1.0), saturation=(1.0, 1.0), blur_p=0.0,
                        noise_p=0.0, canonical_focal=None)
    for cfg in (old, new):
        torch.manual_seed(5)
        item = RadarDepthDataset(cache, 'train', augment=cfg)[1]
        after = torch.rand(())
        if cfg is old:
            reference = (item['image'], after)
    assert torch.equal(item['image'], reference[0]) and torch.equal(after, reference[1])


def test_stronger_photometric_jitter(cache):
    still = dict(crop=(64, 96), flip_p=0, color_p=1.0, gamma=(1, 1), brightness=(1, 1), color=(1, 1))

    def image(seed=0, **cfg):
        torch.manual_seed(seed)
        return unnormalise(RadarDepthDataset(cache, 'train', augment=AugmentConfig(**still, **cfg))[1]['image'])
    base = image()
    grey = image(saturation=(0.0, 0.0))
    np.testing.assert_allclose(grey[..., 0], grey[..., 1], atol=1e-5)
    flat = image(contrast=(0.0, 0.0))
    assert flat.std() < 1e-5 and abs(flat.mean() - base.mean()) < 1e-4
    blurred = image(blur_p=1.0, blur_sigma=(2.0, 2.0))
    np.testing.assert_allclose(blurred, cv2.GaussianBlur(np.ascontiguousarray(base), (0, 0), 2.0), atol=1e-5)
    assert not np.allclose(blurred, base, atol=1e-3)
    noisy = image(noise_p=1.0, noise_std=(0.05, 0.05))
    assert 0.03 < (noisy - base).std() < 0.06 and noisy.min() >= -1e-5 and noisy.max() <= 1 + 1e-5
    np.testing.assert_array_equal(noisy, image(noise_p=1.0, noise_std=(0.05, 0.05)))   # same seed, same item
