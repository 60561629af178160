import numpy as np
import pytest

from xd_rcdepth_core.frame import DEFAULT_RADAR_FIELDS, Frame

K = np.array([[100.0, 0, 50.0], [0, 100.0, 40.0], [0, 0, 1]])


def make(**kw):
    args = dict(image=np.zeros((80, 100, 3), np.uint8), K=K)
    args.update(kw)
    return Frame(**args)


def test_valid_frame_defaults():
    f = make()
    assert f.radar.shape == (0, len(DEFAULT_RADAR_FIELDS))
    assert (f.height, f.width) == (80, 100)
    assert f.radar_column('rcs').shape == (0,)
    assert f.radar_column('nope') is None


def test_radar_is_converted_to_float32():
    f = make(radar=np.ones((3, 6), np.float64))
    assert f.radar.dtype == np.float32


@pytest.mark.parametrize('kw, message', [
    (dict(image=np.zeros((80, 100), np.uint8)), 'Frame.image must be an H x W x 3'),
    (dict(image=np.zeros((80, 100, 3), np.float32)), 'Frame.image must be uint8'),
    (dict(K=np.eye(4)), 'Frame.K must be 3 x 3'),
    (dict(K=np.array([[np.nan, 0, 1], [0, 1, 1], [0, 0, 1]])), 'Frame.K has non-finite'),
    (dict(K=np.array([[-5.0, 0, 1], [0, 1, 1], [0, 0, 1]])), 'Frame.K is not a pinhole'),
    (dict(radar=np.zeros((5, 4), np.float32)), 'Frame.radar must be N x 6'),
    (dict(radar_fields=('u', 'v', 'depth')), 'must start with x, y, z'),
    (dict(T_camera_radar=np.diag([2.0, 1, 1, 1])), 'Frame.T_camera_radar is not a rigid'),
    (dict(T_camera_radar=np.eye(3)), 'Frame.T_camera_radar must be 4 x 4'),
    (dict(depth_sparse=np.zeros((80, 99), np.float32)), 'Frame.depth_sparse must be H x W'),
    (dict(depth_interp=np.zeros((80, 100), np.float64)), 'Frame.depth_interp must be float32'),
    (dict(lidar=np.zeros((4, 4), np.float32)), 'T_camera_lidar is missing'),
    (dict(lidar=np.zeros((4, 3), np.float32), T_camera_lidar=np.eye(4)), 'Frame.lidar must be N x 4'),
    (dict(timestamp=float('nan')), 'Frame.timestamp'),
    (dict(timestamp='abc'), 'Frame.timestamp must be seconds'),
    (dict(T_camera_radar=np.full((4, 4), np.nan)), 'Frame.T_camera_radar has non-finite'),
])
def test_bad_fields_name_the_field(kw, message):
    with pytest.raises(ValueError, match=message):
        make(**kw)


def test_replace_revalidates():
    f = make()
    with pytest.raises(ValueError, match='Frame.K'):
        f.replace(K=np.zeros((2, 2)))


def test_radar_in_camera_applies_extrinsics():
    T = np.eye(4)
    T[:3, 3] = [0.0, 1.0, 2.0]
    f = make(radar=np.array([[1.0, 2.0, 3.0, 0, 0, 0]], np.float32), T_camera_radar=T)
    np.testing.assert_allclose(f.radar_in_camera(), [[1.0, 3.0, 5.0]])
