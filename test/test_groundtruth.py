"""groundtruth.py: nearest-wins accumulation and Delaunay-linear densification."""
import numpy as np
import pytest
from scipy.spatial import Delaunay

from xd_rcdepth_core.groundtruth import accumulate_depth, interpolate_depth, merge_depth_maps

K = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 40.0], [0.0, 0.0, 1.0]])


def _hull_mask(rows, cols, shape):
    tri = Delaunay(np.stack([rows, cols], axis=1).astype(float))
    gr, gc = np.mgrid[0:shape[0], 0:shape[1]]
    return (tri.find_simplex(np.stack([gr.ravel(), gc.ravel()], axis=1).astype(float)) >= 0).reshape(shape)


def test_interpolate_hand_checked_triangle():
    # Three samples of depth = 1 + col: (row 0, col 0) = 1, (0, 4) = 5, (4, 0) = 1.
    sparse = np.zeros((5, 5), np.float32)
    sparse[0, 0], sparse[0, 4], sparse[4, 0] = 1.0, 5.0, 1.0
    dense = interpolate_depth(sparse)
    assert dense.dtype == np.float32 and dense.shape == (5, 5)
    assert dense[1, 1] == pytest.approx(2.0)
    assert dense[2, 2] == pytest.approx(3.0)     # on the hypotenuse: inside the hull
    assert dense[0, 3] == pytest.approx(4.0)
    assert dense[3, 0] == pytest.approx(1.0)
    assert dense[4, 4] == 0.0 and dense[3, 3] == 0.0 and dense[2, 3] == 0.0   # outside the hull


def test_linear_ramp_is_reproduced_inside_hull_and_zero_outside():
    rng = np.random.default_rng(0)
    H, W = 60, 90
    rows, cols = rng.integers(8, 52, 150), rng.integers(10, 80, 150)
    gr, gc = np.mgrid[0:H, 0:W]
    ramp = (2.0 + 0.25 * gr + 0.1 * gc).astype(np.float32)
    sparse = np.zeros((H, W), np.float32)
    sparse[rows, cols] = ramp[rows, cols]
    dense = interpolate_depth(sparse)
    r, c = np.nonzero(sparse)
    hull = _hull_mask(r, c, (H, W))
    np.testing.assert_array_equal(dense > 0, hull)
    np.testing.assert_allclose(dense[hull], ramp[hull], rtol=1e-5)
    assert np.all(dense[~hull] == 0)


def test_matches_scipy_reference():
    rng = np.random.default_rng(1)
    H, W = 70, 120
    sparse = np.zeros((H, W), np.float32)
    for row in range(20, H, 5):     # lidar-like rows of samples with random depths
        cols = np.unique(rng.integers(0, W, 40))
        sparse[row + rng.integers(-1, 2, cols.size), cols] = rng.uniform(2, 60, cols.size)
    fast, ref = interpolate_depth(sparse), interpolate_depth(sparse, method='scipy')
    np.testing.assert_array_equal(fast > 0, ref > 0)
    # Both are Delaunay; they may split co-circular quads differently, so most (not all) pixels agree.
    assert np.mean(np.abs(fast - ref) < 1e-3) > 0.95
    valid = sparse > 0
    np.testing.assert_array_equal(fast[valid], sparse[valid])


def test_degenerate_inputs():
    empty = np.zeros((10, 12), np.float32)
    assert not interpolate_depth(empty).any()
    line = np.zeros((10, 12), np.float32)
    line[3, 2:9] = 7.0                    # collinear: no triangle, samples kept
    out = interpolate_depth(line)
    np.testing.assert_array_equal(out, line)
    with pytest.raises(ValueError, match='method'):
        interpolate_depth(np.ones((4, 4), np.float32), method='nearest')
    with pytest.raises(ValueError, match='H x W'):
        interpolate_depth(np.ones((4, 4, 1), np.float32))


def test_accumulate_depth_nearest_wins_in_any_order():
    # Two points on the same ray (pixel (50, 40)) at 5 m and 3 m, and one other point.
    a = np.array([[0.0, 0.0, 5.0], [1.0, 0.0, 10.0]])
    b = np.array([[0.0, 0.0, 3.0]])
    for sets in ([a, b], [b, a]):
        depth = accumulate_depth(sets, K, 80, 100)
        assert depth.dtype == np.float32 and depth.shape == (80, 100)
        assert depth[40, 50] == pytest.approx(3.0)
        assert depth[40, 60] == pytest.approx(10.0)
        assert np.count_nonzero(depth) == 2


def test_accumulate_depth_drops_near_and_behind_points():
    pts = np.array([[0.0, 0.0, 0.5], [0.0, 0.0, -4.0], [0.0, 0.0, 2.0]])
    depth = accumulate_depth([pts], K, 80, 100)
    assert np.count_nonzero(depth) == 1 and depth[40, 50] == pytest.approx(2.0)
    assert not accumulate_depth([], K, 80, 100).any()


def test_merge_depth_maps_keeps_nearest_nonzero():
    m1 = np.array([[0, 5, 2], [0, 0, 9]], np.float32)
    m2 = np.array([[4, 3, 0], [0, 1, 10]], np.float32)
    np.testing.assert_array_equal(merge_depth_maps([m1, m2]), [[4, 3, 2], [0, 1, 9]])
    with pytest.raises(ValueError):
        merge_depth_maps([])
