import numpy as np
import pytest

from xd_rcdepth_core.frame import Frame
from xd_rcdepth_core.geometry import make_transform, transform_from_pose
from xd_rcdepth_core.radar import (
    RadarEncodingConfig,
    RadarSweep,
    accumulate_sweeps,
    encode_frame_radar,
    encode_radar,
    radar_features,
)

K = np.array([[100.0, 0, 50.0], [0, 100.0, 40.0], [0, 0, 1]])


def test_encode_writes_depth_and_features_at_pixel():
    pts = np.array([[1.0, -0.5, 5.0]])             # -> pixel (u=70, v=30)
    feats = np.array([[7.5, -1.0, 2.0]])
    img, stats = encode_radar(pts, feats, K, 80, 100)
    assert img.shape == (80, 100, 4) and img.dtype == np.float32
    np.testing.assert_allclose(img[30, 70], [5.0, 7.5, -1.0, 2.0])
    assert np.count_nonzero(img[..., 0]) == 1
    assert (stats.points_in, stats.projected, stats.pixels, stats.outside) == (1, 1, 1, 0)


def test_collision_nearest_wins_regardless_of_order_and_duplicates_count():
    pts = np.array([[0.0, 0.0, 20.0], [0.0, 0.0, 8.0], [0.0, 0.0, 8.0], [0.0, 0.0, 12.0]])
    feats = np.array([[1.0, 0, 0], [2.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]])
    for perm in ([0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]):
        img, stats = encode_radar(pts[perm], feats[perm], K, 80, 100)
        np.testing.assert_allclose(img[40, 50], [8.0, 2.0, 0, 0])
        assert stats.collisions == 3 and stats.pixels == 1


def test_non_finite_points_are_dropped_and_counted():
    pts = np.array([[0.0, 0.0, 10.0], [np.nan, 0.0, 5.0], [0.0, np.inf, 5.0], [0.5, 0.0, 10.0]])
    feats = np.array([[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [np.nan, 0, 0]])
    img, stats = encode_radar(pts, feats, K, 80, 100)
    assert stats.non_finite == 3 and stats.projected == 1
    assert np.isfinite(img).all()


def test_empty_cloud_gives_zero_image():
    img, stats = encode_radar(np.zeros((0, 3)), np.zeros((0, 3)), K, 80, 100)
    assert img.shape == (80, 100, 4) and not img.any()
    assert stats.points_in == 0 and stats.projected == 0


def test_points_outside_image_or_behind_are_counted():
    pts = np.array([[0.0, 0.0, -3.0], [100.0, 0.0, 5.0], [0.0, 0.0, 0.9]])
    img, stats = encode_radar(pts, np.zeros((3, 3)), K, 80, 100)
    assert stats.outside == 3 and not img.any()


def test_vertical_extension_draws_a_segment_of_metric_height():
    pts = np.array([[0.0, 0.0, 10.0]])           # pixel (50, 40); 1 m at 10 m = 10 px
    cfg = RadarEncodingConfig(vertical_extension_m=(0.5, 1.0))
    img, _ = encode_radar(pts, np.array([[3.0, 0, 0]]), K, 80, 100, cfg)
    rows = np.nonzero(img[:, 50, 0])[0]
    assert rows.min() == 30 and rows.max() == 45   # 1.0 m above (10 px up), 0.5 m below (5 px down)
    assert np.all(img[rows, 50, 0] == 10.0) and np.all(img[rows, 50, 1] == 3.0)
    assert np.count_nonzero(img[..., 0]) == rows.size


def test_vertical_extension_keeps_the_border_and_counts_collisions():
    # A 10 m tall segment at 10 m spans far past the image: it must stop at the 1-px border rows,
    # like plain projection, and a second point on the same column hides the farther one's pixels.
    pts = np.array([[0.0, 0.0, 10.0], [0.0, 0.0, 20.0]])
    cfg = RadarEncodingConfig(vertical_extension_m=(10.0, 10.0))
    img, stats = encode_radar(pts, np.zeros((2, 3)), K, 80, 100, cfg)
    rows = np.nonzero(img[:, 50, 0])[0]
    assert rows.min() == 1 and rows.max() == 79 and img[0].max() == 0
    assert np.all(img[rows, 50, 0] == 10.0)
    assert stats.pixels == 79 and stats.collisions == 79   # the 20 m segment covers the same 79 rows


def test_bad_vertical_extension_is_rejected():
    with pytest.raises(ValueError, match='vertical_extension_m'):
        RadarEncodingConfig(vertical_extension_m=(-1.0, 0.0))


def test_missing_feature_columns_become_zeros_and_are_reported():
    pts = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    feats, missing = radar_features(pts, ('x', 'y', 'z', 'vx'), ('rcs', 'vx', 'vy'))
    np.testing.assert_allclose(feats, [[0.0, 4.0, 0.0]])
    assert missing == ('rcs', 'vy')


def test_encode_frame_radar_uses_extrinsics():
    # Radar frame: x forward, y left, z up. Camera optical: x right, y down, z forward.
    R = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    T = make_transform(R, [0.0, 0.0, 0.0])
    radar = np.array([[10.0, 0.0, 0.0, 5.0, 1.0, -1.0]], np.float32)   # 10 m straight ahead
    f = Frame(image=np.zeros((80, 100, 3), np.uint8), K=K, radar=radar, T_camera_radar=T)
    img, stats = encode_frame_radar(f)
    np.testing.assert_allclose(img[40, 50], [10.0, 5.0, 1.0, -1.0])
    assert stats.missing_features == ()


def test_accumulate_sweeps_compensates_ego_motion():
    # A static point 20 m ahead of the origin; the ego drove 5 m forward between the sweeps.
    old = RadarSweep(points=np.array([[20.0, 0.0, 0.0, 1.0]], np.float32),
                     T_world_radar=transform_from_pose([0, 0, 0], [1, 0, 0, 0]), timestamp=0.0)
    new = RadarSweep(points=np.array([[15.0, 0.0, 0.0, 2.0]], np.float32),
                     T_world_radar=transform_from_pose([5, 0, 0], [1, 0, 0, 0]), timestamp=0.5)
    pts = accumulate_sweeps([old, new], new.T_world_radar, target_time=0.5)
    np.testing.assert_allclose(pts[:, :3], [[15.0, 0, 0], [15.0, 0, 0]], atol=1e-5)
    np.testing.assert_allclose(pts[:, 3], [1.0, 2.0])
    np.testing.assert_allclose(pts[:, 4], [0.5, 0.0])
    with pytest.raises(ValueError, match='at least one sweep'):
        accumulate_sweeps([], np.eye(4))


def test_channels_first_is_the_same_image_transposed():
    """The layout ONNX files take, written directly: equal to the H x W x C image transposed, with
    collisions and the vertical extension, and for an empty cloud."""
    rng = np.random.default_rng(3)
    pts = np.column_stack([rng.uniform(-3, 3, 40), rng.uniform(-1, 1, 40), rng.uniform(2, 30, 40)])
    pts[5] = pts[4] * 1.5                            # the same ray, farther: a collision
    feats = rng.normal(size=(40, 3))
    for cfg in (RadarEncodingConfig(), RadarEncodingConfig(vertical_extension_m=(0.5, 1.0))):
        hwc, a = encode_radar(pts, feats, K, 80, 100, cfg)
        chw, b = encode_radar(pts, feats, K, 80, 100, cfg, channels_first=True)
        assert chw.shape == (4, 80, 100) and chw.flags['C_CONTIGUOUS']
        np.testing.assert_array_equal(chw, hwc.transpose(2, 0, 1))
        assert a == b and a.pixels > 10 and a.collisions >= 1
    empty, _ = encode_radar(np.zeros((0, 3)), np.zeros((0, 3)), K, 80, 100, channels_first=True)
    assert empty.shape == (4, 80, 100) and not empty.any()
