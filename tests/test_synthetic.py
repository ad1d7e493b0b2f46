import cv2
import numpy as np
import pytest
import torch

from daflow.data.synthetic import SyntheticClips, SyntheticConfig, available_photos, render_clip
from daflow.flow.warp import backward_warp


def _photometric_error(clip, k, flow):
    f1 = torch.from_numpy(clip.frames[k]).permute(2, 0, 1)[None].double()
    f2 = torch.from_numpy(clip.frames[k + 1]).permute(2, 0, 1)[None].double()
    fl = torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1)[None].double()
    return (backward_warp(f2, fl) - f1).abs().mean(1)[0].numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_warping_next_frame_with_gt_reproduces_frame(seed):
    clip = render_clip("default", seed)
    occluded = []
    for k in range(clip.flow.shape[0]):
        # bilinear footprints straddling a layer boundary are not expected to match: erode by 2 px
        keep = cv2.erode((~clip.occlusion[k]).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert keep.mean() > 0.7
        err = _photometric_error(clip, k, clip.flow[k])[keep]
        assert err.mean() < 2.0  # of 255: interpolation error only
        assert np.median(err) < 1.0
        # a wrong flow is clearly detected: the test can fail
        assert _photometric_error(clip, k, clip.flow[k] + 1.0)[keep].mean() > 3 * err.mean()
        # occluded pixels really do not match
        occluded.append(_photometric_error(clip, k, clip.flow[k])[clip.occlusion[k]].mean() / err.mean())
    assert clip.occlusion.sum() > 50 and np.nanmin(occluded) > 5


def test_determinism_and_seed_sensitivity():
    a, b, c = render_clip("tiny", 7), render_clip("tiny", 7), render_clip("tiny", 8)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.flow, b.flow)
    np.testing.assert_array_equal(a.occlusion, b.occlusion)
    assert not np.array_equal(a.frames, c.frames) and not np.array_equal(a.flow, c.flow)


def test_shapes_types_and_motion_range():
    cfg = SyntheticConfig(height=96, width=160, num_frames=5, object_speed=6.0)
    clip = render_clip(cfg, 3)
    assert clip.frames.shape == (5, 96, 160, 3) and clip.frames.dtype == np.uint8
    assert clip.flow.shape == (4, 96, 160, 2) and clip.flow.dtype == np.float32
    assert clip.valid.all() and clip.occlusion.dtype == bool and clip.layer_ids.shape == (5, 96, 160)
    assert np.abs(clip.flow).max() < 60  # smooth motions of a few px per frame
    assert len(np.unique(clip.layer_ids)) >= 2  # objects are visible


def test_real_photographs_are_bundled():
    assert len(available_photos()) >= 5


def test_dataset_is_order_free_and_fast():
    import time

    ds = SyntheticClips(4, config="default", seed=5)
    t = time.perf_counter()
    s2 = ds[2]
    elapsed = time.perf_counter() - t
    s2_again = SyntheticClips(4, config="default", seed=5)[2]
    np.testing.assert_array_equal(s2.frames, s2_again.frames)
    assert s2.frames.shape == (3, 256, 256, 3) and s2.meta["index"] == 2
    assert not np.array_equal(ds[1].frames, s2.frames)
    print(f"3-frame 256x256 clip rendered in {elapsed:.3f} s")
    with pytest.raises(IndexError):
        ds[4]


def test_bad_config():
    with pytest.raises(ValueError, match="num_frames"):
        SyntheticConfig(num_frames=1)
    with pytest.raises(ValueError, match="16x16"):
        SyntheticConfig(height=8)
