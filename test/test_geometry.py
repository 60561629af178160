import numpy as np
import pytest

from xd_rcdepth_core.geometry import (
    backproject_pixels,
    invert_transform,
    is_rigid,
    make_transform,
    perturb_extrinsics,
    project_points,
    quaternion_to_rotation,
    rotation_to_quaternion,
    scale_intrinsics,
    sparse_depth_map,
    transform_from_pose,
    transform_points,
)

K = np.array([[100.0, 0, 50.0], [0, 100.0, 40.0], [0, 0, 1]])


def test_quaternion_90_deg_about_z_maps_x_to_y():
    c = np.sqrt(0.5)
    R = quaternion_to_rotation([c, 0, 0, c])
    np.testing.assert_allclose(R @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(R @ [0, 1, 0], [-1, 0, 0], atol=1e-12)


@pytest.mark.parametrize('q', [[1, 0, 0, 0], [0, 1, 0, 0], [0.5, -0.5, 0.5, -0.5],
                               [0.4998015430569128, -0.5030316162024876, 0.4997798114386805, -0.49737083824542755],
                               [0.01, 0.99, 0.1, 0.0]])
def test_quaternion_round_trip(q):
    q = np.asarray(q) / np.linalg.norm(q)
    q = q if q[0] >= 0 else -q
    np.testing.assert_allclose(rotation_to_quaternion(quaternion_to_rotation(q)), q, atol=1e-9)


def test_zero_quaternion_is_rejected():
    with pytest.raises(ValueError, match='quaternion'):
        quaternion_to_rotation([0, 0, 0, 0])


def test_invert_and_compose():
    T = transform_from_pose([1.0, 2.0, 3.0], [0.9, 0.1, -0.3, 0.2])
    assert is_rigid(T)
    np.testing.assert_allclose(invert_transform(T) @ T, np.eye(4), atol=1e-12)
    p = np.array([[0.5, -1.0, 2.0]])
    np.testing.assert_allclose(transform_points(invert_transform(T), transform_points(T, p)), p, atol=1e-12)
    assert not is_rigid(make_transform(np.diag([1.0, 1.0, 2.0])))


def test_project_points_hand_values_and_rules():
    pts = np.array([
        [0.0, 0.0, 10.0],     # centre -> (50, 40)
        [1.0, -0.5, 5.0],     # u = 100*1/5+50 = 70, v = 100*-0.5/5+40 = 30
        [0.0, 0.0, 0.5],      # nearer than 1 m: dropped
        [0.0, 0.0, -5.0],     # behind: dropped
        [-2.45, 0.0, 5.0],    # u = 1.0: on the 1-px border, dropped (strict)
        [-2.4, 0.0, 5.0],     # u = 2.0: kept
        [np.nan, 0.0, 5.0],   # not finite: dropped
        [4.9, 0.0, 10.0],     # u = 99.0 = W - 1: dropped (strict)
    ])
    proj = project_points(pts, K, height=80, width=100)
    assert proj.index.tolist() == [0, 1, 5]
    assert proj.u.tolist() == [50, 70, 2]
    assert proj.v.tolist() == [40, 30, 40]
    np.testing.assert_allclose(proj.depth, [10, 5, 5])


def test_sparse_depth_map_nearest_wins():
    pts = np.array([[0.0, 0.0, 10.0], [0.0, 0.0, 4.0], [0.0, 0.0, 7.0]])
    proj = project_points(pts, K, 80, 100)
    depth = sparse_depth_map(proj, 80, 100)
    assert depth[40, 50] == pytest.approx(4.0)
    assert np.count_nonzero(depth) == 1


def test_backproject_inverts_projection():
    uvz = np.array([[12.0, 33.0, 7.5], [80.0, 5.0, 30.0]])
    P = backproject_pixels(uvz[:, 0], uvz[:, 1], uvz[:, 2], K)
    proj = project_points(P, K, 80, 100)
    assert proj.u.tolist() == [12, 80] and proj.v.tolist() == [33, 5]


def test_scale_intrinsics_pixel_centres():
    K2 = scale_intrinsics(K, 0.5, 0.5)
    # A point at pixel centre (50, 40) lands at ((50 + .5) * .5 - .5, ...) = (24.75, 19.75).
    assert K2[0, 2] == pytest.approx(24.75) and K2[1, 2] == pytest.approx(19.75)
    assert K2[0, 0] == pytest.approx(50.0)


def test_perturb_extrinsics_moves_a_point_by_the_angle_and_offset():
    T = np.eye(4)
    p = np.array([[0.0, 0.0, 10.0]])                     # 10 m ahead of the camera
    yawed = transform_points(perturb_extrinsics(T, yaw_deg=1.0), p)[0]
    assert yawed[0] == pytest.approx(10 * np.sin(np.radians(1.0))) and yawed[1] == pytest.approx(0.0)
    pitched = transform_points(perturb_extrinsics(T, pitch_deg=2.0), p)[0]
    assert pitched[1] == pytest.approx(-10 * np.sin(np.radians(2.0))) and pitched[0] == pytest.approx(0.0)
    shifted = transform_points(perturb_extrinsics(T, translation=(0.1, 0.0, -0.05)), p)[0]
    assert np.allclose(shifted, [0.1, 0.0, 9.95])
    assert np.allclose(perturb_extrinsics(T), T)
