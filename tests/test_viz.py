import numpy as np
import pytest
import torch

from daflow.files import read_image
from daflow.flow.viz import error_to_color, flow_panel_tiles, flow_to_color, make_colorwheel, make_panel, write_panel


def test_colorwheel_is_bakers():
    w = make_colorwheel()
    assert w.shape == (55, 3)
    np.testing.assert_array_equal(w[0], [255, 0, 0])  # red
    np.testing.assert_array_equal(w[15], [255, 255, 0])  # yellow starts the YG ramp
    np.testing.assert_array_equal(w[21], [0, 255, 0])  # green
    np.testing.assert_array_equal(w[25], [0, 255, 255])  # cyan
    np.testing.assert_array_equal(w[36], [0, 0, 255])  # blue
    np.testing.assert_array_equal(w[49], [255, 0, 255])  # magenta


def test_directions_and_saturation():
    flow = np.zeros((1, 5, 2), np.float32)
    flow[0, 0] = (1, 0)  # right
    flow[0, 1] = (-1, 0)  # left
    flow[0, 2] = (0, 1)  # down
    flow[0, 3] = (0.5, 0)  # half magnitude right -> paler
    col = flow_to_color(flow).astype(int)
    assert col[0, 4].tolist() == [255, 255, 255]  # zero flow is white
    # Middlebury hues at full saturation: right = red, left = cyan-blue, down = yellow
    assert col[0, 0].tolist() == [255, 0, 0]
    assert col[0, 1].tolist() == [0, 209, 255]
    assert col[0, 2].tolist() == [255, 229, 0]
    assert (col[0, 3] >= col[0, 0]).all()  # smaller magnitude -> closer to white
    # fixed normalisation: doubling max_flow makes everything paler
    assert (flow_to_color(flow, max_flow=2).astype(int) >= col).all()


def test_torch_input_invalid_black_and_beyond_range():
    f = torch.zeros(2, 3, 4)
    f[0, 0, 0] = 10
    col = flow_to_color(f, max_flow=1.0, valid=np.array([[True] * 4, [True] * 4, [True, True, True, False]]))
    assert col.shape == (3, 4, 3) and col.dtype == np.uint8
    assert col[2, 3].tolist() == [0, 0, 0]
    assert col[0, 0].max() <= int(255 * 0.75)  # beyond max_flow: darkened by 0.75
    with pytest.raises(ValueError, match="max_flow"):
        flow_to_color(np.zeros((2, 2, 2)), max_flow=0)


def test_panel_writer(tmp_path):
    rng = np.random.default_rng(0)
    f1 = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    gt = rng.standard_normal((40, 60, 2)).astype(np.float32)
    tiles = flow_panel_tiles(f1, f1, {"est": gt + 0.5}, gt=gt)
    assert [t[0] for t in tiles][:3] == ["frame k", "frame k+1", "ground truth"] and len(tiles) == 5
    write_panel(tmp_path / "p.png", tiles, ncols=3)
    img = read_image(tmp_path / "p.png")
    assert img.shape[1] == 3 * 60 and img.shape[0] > 2 * 40
    assert make_panel([("a", np.zeros((10, 10), np.uint8))]).shape[2] == 3
    e = error_to_color(np.array([[0.0, 20.0, np.nan]]))
    assert e[0, 2].tolist() == [0, 0, 0] and e[0, 1].sum() > e[0, 0].sum()
    with pytest.raises(ValueError, match="uint8"):
        make_panel([("bad", np.zeros((4, 4), np.float32))])
