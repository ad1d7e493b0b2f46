import struct

import cv2
import numpy as np
import pytest

from conftest import random_flow
from daflow.flow.io import FlowFormatError, read_flow, write_flow


@pytest.mark.parametrize("ext", [".flo", ".flo5", ".npy", "_flow.npy"])
@pytest.mark.parametrize("hw", [(7, 13), (64, 48), (1, 1)])
def test_round_trip_exact(tmp_path, rng, ext, hw):
    flow = random_flow(rng, *hw, scale=300.0)
    flow[0, 0] = (1e5, -1e5)  # large values survive in float formats
    valid = rng.random(hw) > 0.3
    valid[0, 0] = True
    path = tmp_path / f"a{ext}"
    write_flow(path, flow, valid)
    got, got_valid = read_flow(path)
    assert got.dtype == np.float32 and got.shape == hw + (2,)
    assert got_valid.dtype == bool and got_valid.shape == hw
    np.testing.assert_array_equal(got_valid, valid)
    np.testing.assert_array_equal(got[valid], flow[valid])
    assert np.all(got[~valid] == 0)


def test_nan_is_invalid_everywhere(tmp_path, rng):
    flow = random_flow(rng, 9, 11)
    flow[2, 3, 0] = np.nan
    flow[4, 4, 1] = np.inf
    for ext in (".flo", ".flo5", ".npy", ".png"):
        write_flow(tmp_path / f"b{ext}", flow)
        _, valid = read_flow(tmp_path / f"b{ext}")
        assert not valid[2, 3] and not valid[4, 4] and valid.sum() == 9 * 11 - 2, ext


def test_kitti_png_quantised_round_trip_and_layout(tmp_path, rng):
    flow = random_flow(rng, 15, 21, scale=50.0)
    valid = rng.random((15, 21)) > 0.5
    write_flow(tmp_path / "k.png", flow, valid)
    got, got_valid = read_flow(tmp_path / "k.png")
    np.testing.assert_array_equal(got_valid, valid)
    assert np.abs(got[valid] - flow[valid]).max() <= 0.5 / 64 + 1e-6
    raw = cv2.imread(str(tmp_path / "k.png"), cv2.IMREAD_UNCHANGED)  # BGR
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw[:, :, 0], valid.astype(np.uint16))  # B = valid bit
    i, j = np.argwhere(valid)[0]
    assert raw[i, j, 2] == np.uint16(np.rint(flow[i, j, 0] * 64 + 32768))  # R = u


def test_kitti_png_refuses_values_out_of_range(tmp_path):
    flow = np.zeros((4, 4, 2), np.float32)
    flow[1, 1, 0] = 600.0
    with pytest.raises(FlowFormatError, match="KITTI PNG stores"):
        write_flow(tmp_path / "big.png", flow)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_opencv_cross_check(tmp_path, rng):
    flow = random_flow(rng, 37, 53)
    cv2.writeOpticalFlow(str(tmp_path / "cv.flo"), flow)
    ours, valid = read_flow(tmp_path / "cv.flo")
    assert valid.all()
    np.testing.assert_array_equal(ours, flow)
    write_flow(tmp_path / "ours.flo", flow)
    np.testing.assert_array_equal(cv2.readOpticalFlow(str(tmp_path / "ours.flo")), flow)
    assert (tmp_path / "ours.flo").read_bytes() == (tmp_path / "cv.flo").read_bytes()


def test_flo_header_bytes(tmp_path):
    write_flow(tmp_path / "h.flo", np.zeros((3, 5, 2), np.float32))
    data = (tmp_path / "h.flo").read_bytes()
    assert data[:4] == b"PIEH"
    assert struct.unpack("<ii", data[4:12]) == (5, 3)
    assert len(data) == 12 + 3 * 5 * 8


def test_flo_unknown_values_are_invalid(tmp_path):
    flow = np.zeros((2, 2, 2), np.float32)
    flow[1, 0] = 1e10
    cv2.writeOpticalFlow(str(tmp_path / "u.flo"), flow)
    _, valid = read_flow(tmp_path / "u.flo")
    assert valid.tolist() == [[True, True], [False, True]]


def test_tartanair_mask_convention(tmp_path, rng):
    flow = random_flow(rng, 6, 8)
    mask = np.zeros((6, 8), np.uint8)
    mask[0, 0], mask[0, 1], mask[0, 2] = 1, 10, 100
    np.save(tmp_path / "000000_000001_flow.npy", flow)
    np.save(tmp_path / "000000_000001_mask.npy", mask)
    _, valid = read_flow(tmp_path / "000000_000001_flow.npy")
    assert valid[0, 0] and valid[0, 1] and not valid[0, 2] and valid.sum() == 47
    write_flow(tmp_path / "x_flow.npy", flow, valid)
    np.testing.assert_array_equal(np.load(tmp_path / "x_mask.npy"), np.where(valid, 0, 100))


def test_spring_flo5_layout(tmp_path):
    import h5py

    flow = np.arange(4 * 6 * 2, dtype=np.float32).reshape(4, 6, 2)
    flow[1, 2] = np.nan
    with h5py.File(tmp_path / "f.flo5", "w") as f:
        f.create_dataset("flow", data=flow, compression="gzip", compression_opts=5)
    got, valid = read_flow(tmp_path / "f.flo5")
    assert not valid[1, 2] and valid.sum() == 23
    np.testing.assert_array_equal(got[valid], flow[valid])


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("t.flo", b"PIEH" + struct.pack("<ii", 4, 4) + b"\0" * 10, "must have 140 bytes"),
        ("s.flo", b"PIE", "truncated"),
        ("w.flo", b"XXXX" + struct.pack("<ii", 1, 1) + b"\0" * 8, "wrong .flo tag"),
        ("n.npy", None, r"expected a flow array of shape \[H, W, 2\]"),
        ("bad.flo5", b"not hdf5", "not a readable HDF5"),
        ("bad.png", b"not png", "cannot decode"),
    ],
)
def test_malformed_files_give_clear_errors(tmp_path, name, content, match):
    path = tmp_path / name
    if content is None:
        np.save(path, np.zeros((3, 4, 3), np.float32))
    else:
        path.write_bytes(content)
    with pytest.raises(FlowFormatError, match=match) as err:
        read_flow(path)
    assert str(path) in str(err.value)


def test_wrong_extension_and_missing_file(tmp_path):
    with pytest.raises(FlowFormatError, match="unknown flow file extension"):
        read_flow(tmp_path / "x.txt")
    with pytest.raises(FlowFormatError, match="unknown flow file extension"):
        write_flow(tmp_path / "x.jpg", np.zeros((2, 2, 2)))
    with pytest.raises(FileNotFoundError, match="flow file not found"):
        read_flow(tmp_path / "missing.flo")


def test_write_shape_mismatch(tmp_path):
    with pytest.raises(FlowFormatError, match=r"\[H, W, 2\]"):
        write_flow(tmp_path / "a.flo", np.zeros((2, 2, 2, 1)))
    with pytest.raises(FlowFormatError, match="does not match"):
        write_flow(tmp_path / "a.flo", np.zeros((2, 2, 2)), valid=np.ones((3, 2), bool))
    assert not list(tmp_path.iterdir())


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import daflow.flow.io as fio

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fio, "_write_flo", boom)
    with pytest.raises(RuntimeError):
        write_flow(tmp_path / "a.flo", np.zeros((2, 2, 2)))
    assert not list(tmp_path.iterdir())
