import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def random_flow(rng, h, w, scale=20.0):
    return (rng.standard_normal((h, w, 2)) * scale).astype(np.float32)
