"""Shared pytest fixtures (keep this small: fixtures used by more than one test module only)."""
import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, so that every test sees the same 'random' images."""
    return np.random.default_rng(1234)


@pytest.fixture
def smooth_linear(rng) -> np.ndarray:
    """A small [40,56,3] float32 linear image with gradients and distinct channels (catches RGB/BGR swaps)."""
    yy, xx = np.mgrid[0:40, 0:56].astype(np.float32)
    img = np.stack([xx / 55, yy / 39, 0.25 + 0.5 * (xx + yy) / 93], axis=2)
    return np.ascontiguousarray(img, dtype=np.float32)
