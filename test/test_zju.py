"""ZJU-4DRadarCam adapter on a few frames written by the test in the dataset's layout."""
import warnings
from pathlib import Path

import numpy as np
import pytest

from xd_rcdepth_core.config import ZJU_CAMERA
from xd_rcdepth_core.data.errors import CorruptFileError, DatasetError, DataWarning, SampleError
from xd_rcdepth_core.data.images import write_depth_png
from xd_rcdepth_core.data.zju import ZJU_CROP_ROWS, ZJUAdapter, ZJUConfig
from xd_rcdepth_core.geometry import project_points


def write_zju_frames(root, n=3, height=72, width=128, seed=0, splits=None):
    """n frames in the ZJU layout; returns {id: camera-frame radar xyz} (the truth the test knows)."""
    from PIL import Image
    root = Path(root)
    rng = np.random.default_rng(seed)
    K = ZJU_CAMERA.intrinsics(height, width)
    truth = {}
    for folder in ('image', 'radar', 'gt', 'gt_interp'):
        (root / folder).mkdir(parents=True, exist_ok=True)
    ids = [f'{i:06d}' for i in range(n)]
    for i, fid in enumerate(ids):
        img = np.zeros((height, width, 3), np.uint8)
        img[..., 0] = np.linspace(0, 255, width)[None].astype(np.uint8)
        img[..., 1] = 40 * i
        Image.fromarray(img).save(root / 'image' / f'{fid}.png')
        xyz = np.stack([rng.uniform(-8, 8, 30), rng.uniform(-1, 1.5, 30), rng.uniform(3, 40, 30)], 1)
        proj = project_points(xyz, K, height, width, min_depth=0.5, border=0)
        xyz = xyz[proj.index]
        uvw = xyz @ K.T
        np.save(root / 'radar' / f'{fid}.npy', np.stack([uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2], xyz[:, 2]], 1))
        truth[fid] = xyz
        gt = np.zeros((height, width), np.float32)
        gt[::5, ::7] = rng.uniform(1, 60, gt[::5, ::7].shape)
        write_depth_png(root / 'gt' / f'{fid}.png', gt)
        write_depth_png(root / 'gt_interp' / f'{fid}.png', np.full((height, width), 10.0 + i, np.float32))
    splits = splits or {'train': ids[:-1], 'val': ids[-1:], 'test': ids[-1:]}
    for name, members in splits.items():
        (root / f'{name}.txt').write_text(''.join(m + '\n' for m in members))
    (root / 'full.txt').write_text(''.join(m + '\n' for m in ids))
    return truth


def test_zju_frames_radar_backprojected_and_gt(tmp_path):
    truth = write_zju_frames(tmp_path / 'data', n=3)
    adapter = ZJUAdapter(tmp_path)          # the parent folder works too (data/ is found)
    assert adapter.splits() == {'train': ['000000', '000001'], 'val': ['000002'], 'test': ['000002']}
    f = adapter.frame('000001')
    assert f.image.shape == (72, 128, 3) and f.image[0, 0, 1] == 40
    np.testing.assert_allclose(f.K, ZJU_CAMERA.intrinsics(72, 128))
    assert f.radar_fields == ('x', 'y', 'z')
    np.testing.assert_array_equal(f.T_camera_radar, np.eye(4))
    np.testing.assert_allclose(f.radar, truth['000001'], rtol=1e-5, atol=1e-4)
    assert f.depth_accumulated is None
    assert np.all(f.depth_interp == 11.0)
    valid = f.depth_sparse > 0
    assert valid.sum() == f.depth_sparse[::5, ::7].size and not valid[1::5].any()


def test_zju_published_intrinsics_at_native_size():
    K = ZJU_CAMERA.intrinsics(720, 1280)
    assert (K[0, 0], K[1, 1], K[0, 2], K[1, 2]) == (643.67, 643.54, 631.35, 367.31)


def test_zju_crop_rows_240_540(tmp_path):
    truth = write_zju_frames(tmp_path, n=1, height=720, width=1280)
    full = ZJUAdapter(tmp_path).frame('000000')
    crop = ZJUAdapter(tmp_path, ZJUConfig(crop_rows=ZJU_CROP_ROWS)).frame('000000')
    assert crop.image.shape == (300, 1280, 3) and crop.depth_sparse.shape == (300, 1280)
    np.testing.assert_array_equal(crop.depth_sparse, full.depth_sparse[240:540])
    assert crop.K[1, 2] == pytest.approx(full.K[1, 2] - 240)
    v = truth['000000'] @ full.K.T
    v = v[:, 1] / v[:, 2]
    in_band = (v >= 239.5) & (v < 539.5)
    assert crop.radar.shape[0] == in_band.sum() > 0
    # The same 3-D points project to the same pixel rows, shifted by the crop.
    pc = project_points(crop.radar, crop.K, 300, 1280, min_depth=0.5, border=0)
    pf = project_points(crop.radar, full.K, 720, 1280, min_depth=0.5, border=0)
    np.testing.assert_array_equal(pc.v, pf.v - 240)
    assert ZJUAdapter(tmp_path, ZJUConfig(crop_rows=ZJU_CROP_ROWS)).image_file('000000') is None


def test_zju_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match='not a ZJU-4DRadarCam data folder'):
        ZJUAdapter(tmp_path)
    write_zju_frames(tmp_path, n=3)
    adapter = ZJUAdapter(tmp_path)
    (tmp_path / 'radar' / '000000.npy').unlink()
    with pytest.raises(SampleError, match='000000.npy'):
        adapter.frame('000000')
    np.save(tmp_path / 'radar' / '000001.npy', np.zeros((4, 2)))
    with pytest.raises(CorruptFileError, match=r'000001.npy.*N x 3'):
        adapter.frame('000001')
    (tmp_path / 'gt_interp' / '000002.png').unlink()
    with pytest.warns(DataWarning, match='000002.png'):
        f = adapter.frame('000002')
    assert f.depth_interp is None and f.depth_sparse is not None
    for s in ('train', 'val', 'test'):
        (tmp_path / f'{s}.txt').unlink()
    with pytest.raises(DatasetError, match='no split file'):
        adapter.splits()


def test_zju_drops_bad_radar_depths_with_a_warning(tmp_path):
    write_zju_frames(tmp_path, n=1)
    np.save(tmp_path / 'radar' / '000000.npy', np.array([[10, 10, 5.0], [20, 20, 0.0], [5, 5, np.nan]]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        f = ZJUAdapter(tmp_path).frame('000000')
    assert f.radar.shape == (1, 3) and f.radar[0, 2] == pytest.approx(5.0)
    assert any('2 radar points' in str(w.message) for w in caught)


def test_zju_evaluation_rule_and_content_settings(tmp_path):
    write_zju_frames(tmp_path, n=1)
    full, crop = ZJUAdapter(tmp_path), ZJUAdapter(tmp_path, ZJUConfig(crop_rows=ZJU_CROP_ROWS))
    assert full.eval_multiple == crop.eval_multiple == 0           # RadarCam-Depth evaluates every row
    assert full.content_settings()['crop_rows'] is None and crop.content_settings()['crop_rows'] == ZJU_CROP_ROWS
    assert full.content_settings()['camera']['fx'] == ZJU_CAMERA.fx
