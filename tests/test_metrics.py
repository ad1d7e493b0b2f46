import numpy as np
import pytest
import torch

from daflow.flow.metrics import FlowMetrics, end_point_error, flow_metrics, warping_error


def test_hand_computed_numpy():
    gt = np.zeros((1, 4, 2), np.float32)
    pred = np.array([[[0, 0], [3, 4], [0.5, 0], [0, 2]]], np.float32)  # epe 0, 5, 0.5, 2
    m = flow_metrics(pred, gt)
    assert m["epe"] == pytest.approx(7.5 / 4)
    assert m["1px"] == pytest.approx(50.0)  # 5 and 2 exceed 1
    assert m["3px"] == pytest.approx(25.0)
    assert m["5px"] == pytest.approx(0.0)  # strictly greater than 5
    frac = flow_metrics(pred, gt, percent=False)
    assert frac["1px"] == pytest.approx(0.5)


def test_torch_channels_first_matches_numpy(rng):
    pred = rng.standard_normal((2, 5, 6, 2)).astype(np.float32) * 3
    gt = rng.standard_normal((2, 5, 6, 2)).astype(np.float32) * 3
    a = flow_metrics(pred, gt)
    b = flow_metrics(torch.from_numpy(pred).permute(0, 3, 1, 2), torch.from_numpy(gt).permute(0, 3, 1, 2))
    assert a == pytest.approx(b)
    c = flow_metrics(torch.from_numpy(pred[0]).permute(2, 0, 1), torch.from_numpy(gt[0]).permute(2, 0, 1))
    assert c == pytest.approx(flow_metrics(pred[0], gt[0]))


def test_mask_and_nan_ground_truth():
    gt = np.zeros((2, 2, 2), np.float32)
    pred = np.array([[[10, 0], [1, 0]], [[0, 0], [0, 0]]], np.float32)
    valid = np.array([[False, True], [True, True]])
    assert flow_metrics(pred, gt, valid)["epe"] == pytest.approx(1 / 3)
    gt_nan = gt.copy()
    gt_nan[0, 0] = np.nan
    assert flow_metrics(pred, gt_nan)["epe"] == pytest.approx(1 / 3)
    assert flow_metrics(
        torch.from_numpy(pred).permute(2, 0, 1), torch.from_numpy(gt).permute(2, 0, 1), torch.from_numpy(valid)
    )["epe"] == pytest.approx(1 / 3)


def test_image_vs_pixel_pooling():
    gt = np.zeros((2, 1, 2, 2), np.float32)
    pred = np.zeros_like(gt)
    pred[0, 0, 0] = (4, 0)  # image 0: errors 4, 0 ; image 1: errors 0, 0 but only 1 valid pixel
    valid = np.array([[[True, True]], [[True, False]]])
    assert flow_metrics(pred, gt, valid, reduce="image")["epe"] == pytest.approx((2 + 0) / 2)
    assert flow_metrics(pred, gt, valid, reduce="pixel")["epe"] == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="reduce"):
        flow_metrics(pred, gt, reduce="median")


def test_images_without_valid_pixels_are_skipped():
    acc = FlowMetrics()
    acc.update(np.ones((2, 2, 2)), np.zeros((2, 2, 2)), np.zeros((2, 2), bool))
    assert acc.n_skipped == 1 and acc.count == 0
    with pytest.raises(ValueError, match="no image"):
        acc.compute()
    acc.update(np.ones((2, 2, 2)), np.zeros((2, 2, 2)))
    assert acc.compute()["epe"] == pytest.approx(np.sqrt(2))


def test_spring_min_over_candidates():
    pred = np.zeros((1, 2, 2), np.float32)  # H=1, W=2
    gt = np.zeros((2, 4, 2), np.float32)
    gt[:, :2] = [[[5, 0], [3, 0]], [[0, 2], [9, 9]]]  # pixel 0 candidates: 5, 3, 2, 12.7 -> min 2
    gt[:, 2:] = np.nan  # pixel 1: no valid candidate
    gt[1, 1] = np.nan
    epe, ok = end_point_error(pred, gt, spring_min=True)
    assert ok.tolist() == [[[True, False]]]
    assert float(epe[0, 0, 0]) == pytest.approx(2.0)
    assert flow_metrics(pred, gt, spring_min=True)["epe"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="twice"):
        flow_metrics(pred, gt[:2, :2], spring_min=True)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match=r"channels-first \[B, 2, H, W\]"):
        flow_metrics(torch.zeros(1, 4, 4, 2), torch.zeros(1, 4, 4, 2))
    with pytest.raises(ValueError, match="channels-last"):
        flow_metrics(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="valid mask"):
        flow_metrics(np.zeros((4, 4, 2)), np.zeros((4, 4, 2)), np.ones((3, 4, 4), bool))


def test_warping_error_zero_for_exact_translation():
    rng = np.random.default_rng(0)
    base = torch.from_numpy(rng.random((1, 3, 20, 30)))
    nxt = torch.roll(base, shifts=2, dims=3)  # content moves right by 2 px
    flow = torch.zeros(1, 2, 20, 30, dtype=torch.float64)
    flow[:, 0] = 2.0
    assert warping_error(base, nxt, flow) == pytest.approx(0.0, abs=1e-12)
    wrong = warping_error(base, nxt, torch.zeros_like(flow))
    assert wrong > 0.1
    occ = torch.ones(1, 20, 30, dtype=torch.bool)
    occ[:, :, :5] = False
    assert warping_error(base, nxt, torch.zeros_like(flow), occlusion=occ) != pytest.approx(wrong)


def test_warping_error_hand_value():
    a = torch.zeros(1, 2, 1, 3, dtype=torch.float64)
    b = torch.zeros_like(a)
    b[0, :, 0, 1] = 1.0  # pixel 1 differs by 1 in both channels -> squared sum 2
    assert warping_error(a, b, torch.zeros(1, 2, 1, 3)) == pytest.approx(2 / 3)
