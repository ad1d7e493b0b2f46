"""Blur kernels of the Real-ESRGAN family (``docs/degradations.md``).

All kernels are odd-sized, centred (so blurring never moves content), and sum to 1. ``p`` runs over the
integer grid ``−(k−1)/2 … (k−1)/2`` and ``Σ = R(θ)·diag(σx², σy²)·R(θ)ᵀ``:

- Gaussian:     ``K ∝ exp(−½·pᵀΣ⁻¹p)``
- generalized:  ``K ∝ exp(−½·(pᵀΣ⁻¹p)^β)``
- plateau:      ``K ∝ 1 / (1 + (pᵀΣ⁻¹p)^β)``
- sinc:         ``K(r) = ω·J1(ω·r) / (2π·r)``, centre ``ω²/(4π)`` (circular ideal low-pass of cut-off ω).
"""

from __future__ import annotations

import numpy as np
from scipy.special import j1

KERNEL_FAMILIES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc")


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd number, got {size}")
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    return np.meshgrid(r, r, indexing="xy")


def _mahalanobis(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"kernel sigmas must be positive, got ({sigma_x}, {sigma_y})")
    xx, yy = _grid(size)
    c, s = np.cos(theta), np.sin(theta)
    # rotate the grid into the kernel's principal axes
    u = c * xx + s * yy
    v = -s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalise(k: np.ndarray) -> np.ndarray:
    return (k / k.sum()).astype(np.float32)


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float = 0.0) -> np.ndarray:
    return _normalise(np.exp(-0.5 * _mahalanobis(size, sigma_x, sigma_y, theta)))


def generalized_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    return _normalise(np.exp(-0.5 * _mahalanobis(size, sigma_x, sigma_y, theta) ** beta))


def plateau_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> np.ndarray:
    return _normalise(1.0 / (1.0 + _mahalanobis(size, sigma_x, sigma_y, theta) ** beta))


def sinc_kernel(size: int, omega: float) -> np.ndarray:
    xx, yy = _grid(size)
    r = np.hypot(xx, yy)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = omega * j1(omega * r) / (2 * np.pi * r)
    k[r == 0] = omega**2 / (4 * np.pi)
    return _normalise(k)


def make_kernel(
    family: str, size: int, sigma_x: float, sigma_y: float, theta: float, beta: float, omega: float
) -> np.ndarray:
    """The kernel of ``family`` (one of :data:`KERNEL_FAMILIES`); isotropic families use ``sigma_x`` only."""
    if family not in KERNEL_FAMILIES:
        raise ValueError(f"unknown kernel family {family!r}; expected one of {KERNEL_FAMILIES}")
    if family == "sinc":
        return sinc_kernel(size, omega)
    if family.endswith("_iso") or family == "iso":
        sigma_y, theta = sigma_x, 0.0
    if family in ("iso", "aniso"):
        return gaussian_kernel(size, sigma_x, sigma_y, theta)
    if family.startswith("generalized"):
        return generalized_kernel(size, sigma_x, sigma_y, theta, beta)
    return plateau_kernel(size, sigma_x, sigma_y, theta, beta)
