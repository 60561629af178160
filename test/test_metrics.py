import math

import numpy as np
import pytest

from xd_rcdepth_core.metrics import MetricAccumulator, image_metrics, markdown_table


def test_hand_computed_values():
    gt = np.array([[2.0, 4.0], [0.0, 100.0]])        # 0 and 100 (>= 80) are not valid
    pred = np.array([[1.0, 5.0], [3.0, 3.0]])
    m = image_metrics(pred, gt, max_depth=80)
    assert m['mae'] == pytest.approx(1.0)
    assert m['rmse'] == pytest.approx(1.0)
    assert m['abs_rel'] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert m['sq_rel'] == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert m['log10'] == pytest.approx((math.log10(2) + math.log10(5 / 4)) / 2)
    e = np.array([math.log(1 / 2), math.log(5 / 4)])
    assert m['rmse_log'] == pytest.approx(math.sqrt(np.mean(e ** 2)))
    assert m['silog'] == pytest.approx(100 * math.sqrt(np.mean(e ** 2) - np.mean(e) ** 2))
    # ratios 2.0 and exactly 1.25: delta thresholds are strict
    assert (m['d1'], m['d2'], m['d3']) == (0.0, 0.5, 0.5)


def test_predictions_are_clipped_to_the_evaluation_range():
    gt = np.array([40.0, 45.0])
    pred = np.array([100.0, np.inf])
    m50 = image_metrics(pred, gt, max_depth=50)
    assert m50['mae'] == pytest.approx((10 + 5) / 2)
    pred_nan = np.array([np.nan, 45.0])
    assert image_metrics(pred_nan, gt, 50)['mae'] == pytest.approx((40 - 1e-3) / 2)


def test_gt_bounds_are_strict():
    gt = np.array([1e-3, 50.0, 49.0])
    m = image_metrics(np.array([1.0, 1.0, 48.0]), gt, max_depth=50)
    assert m['mae'] == pytest.approx(1.0)        # only 49 m counts


def test_image_without_valid_pixels_returns_none_and_is_counted():
    acc = MetricAccumulator(ranges=(50.0, 80.0))
    acc.add(np.ones((2, 2)) * 10, np.zeros((2, 2)), 'empty')
    acc.add(np.array([[10.0, 60.0]]), np.array([[11.0, 62.0]]), 'far')   # 62 only valid at 80
    res = acc.result()
    assert res['images'] == 2
    assert res['by_range']['50']['images'] == 1 and res['by_range']['50']['images_without_valid_gt'] == 1
    assert res['by_range']['50']['mae'] == pytest.approx(1.0)
    assert res['by_range']['80']['mae'] == pytest.approx(1.5)


def test_mean_over_images_not_pooled_over_pixels():
    acc = MetricAccumulator(ranges=(80.0,))
    acc.add(np.full(1, 11.0), np.full(1, 10.0))                 # MAE 1 on 1 pixel
    acc.add(np.full(9, 13.0), np.full(9, 10.0))                 # MAE 3 on 9 pixels
    assert acc.result()['by_range']['80']['mae'] == pytest.approx(2.0)   # pooled would be 2.8


def test_no_valid_image_at_all_reports_none_not_zero():
    acc = MetricAccumulator(ranges=(80.0,))
    acc.add(np.ones(3), np.zeros(3))
    entry = acc.result()['by_range']['80']
    assert entry['mae'] is None and entry['images'] == 0
    assert 'n/a' in markdown_table(acc.result())


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match='shape'):
        image_metrics(np.ones((2, 2)), np.ones((2, 3)), 80)
