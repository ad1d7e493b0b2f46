import pytest
import torch

from daflow.flow.warp import backward_warp, forward_backward_occlusion


def test_integer_shift_is_exact():
    img = torch.arange(2 * 3 * 5 * 7, dtype=torch.float64).reshape(2, 3, 5, 7)
    flow = torch.zeros(2, 2, 5, 7, dtype=torch.float64)
    flow[:, 0], flow[:, 1] = 2, 1
    out, inside = backward_warp(img, flow, return_mask=True)
    torch.testing.assert_close(out[:, :, :4, :5], img[:, :, 1:, 2:])
    assert inside[:, :4, :5].all() and not inside[:, 4].any() and not inside[:, :, 5:].any()


def test_subpixel_is_bilinear():
    img = torch.tensor([[[[0.0, 10.0, 20.0]]]], dtype=torch.float64)
    flow = torch.zeros(1, 2, 1, 3, dtype=torch.float64)
    flow[:, 0] = 0.25
    out = backward_warp(img, flow)
    torch.testing.assert_close(out[0, 0, 0, :2], torch.tensor([2.5, 12.5], dtype=torch.float64))


def test_shape_check():
    with pytest.raises(ValueError, match=r"\[B, 2, H, W\]"):
        backward_warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4))


def test_forward_backward_consistent_translation_not_occluded():
    fw = torch.zeros(1, 2, 16, 16)
    fw[:, 0] = 3.0
    bw = -fw
    occ = forward_backward_occlusion(fw, bw)
    assert not occ[:, :, :13].any()  # consistent and in bounds
    assert occ[:, :, 13:].all()  # targets leave the image
    occ_plain = forward_backward_occlusion(fw, bw, squared=False)
    assert torch.equal(occ, occ_plain)


def test_inconsistent_backward_flow_is_occluded():
    fw = torch.zeros(1, 2, 8, 8)
    bw = torch.zeros(1, 2, 8, 8)
    bw[:, :, 2:4, 2:4] = 5.0
    occ = forward_backward_occlusion(fw, bw)
    assert occ[0, 2:4, 2:4].all() and occ.sum() == 4
