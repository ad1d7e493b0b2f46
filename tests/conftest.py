import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# the benchmarks' fixtures (held-out clips, real footage) live beside the scripts, outside the installed package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def random_flow(rng, h, w, scale=20.0):
    return (rng.standard_normal((h, w, 2)) * scale).astype(np.float32)
