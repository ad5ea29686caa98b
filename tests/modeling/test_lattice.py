"""The permutohedral lattice against a brute-force O(N²) Gaussian filter, and its adjoint."""

from __future__ import annotations

import pytest
import torch

from humanparse.errors import HumanParseError
from humanparse.modeling.lattice import LatticeStack, PermutohedralLattice, permutohedral_filter


def smooth_scene(height: int, width: int, dim: int, theta_xy: float = 3.0, theta_rgb: float = 20.0):
    """Features of a smooth synthetic image and smooth two-channel values on it."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij")
    rgb = torch.stack((torch.sin(xs / 5), torch.cos(ys / 7), torch.sin((xs + ys) / 9)), -1) * 40 + 100
    position = torch.stack((xs, ys), -1) / theta_xy
    features = torch.cat((position, rgb[..., : dim - 2] / theta_rgb), -1).reshape(-1, dim)
    values = torch.stack((torch.sin(xs / 4) + 1, torch.cos(ys / 3) + 1), -1).reshape(-1, 2)
    return features.float(), values.float()


def brute_force(values: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    dist2 = torch.cdist(features.double(), features.double()) ** 2
    return torch.exp(-0.5 * dist2) @ values.double()


def fitted_error(approx: torch.Tensor, exact: torch.Tensor) -> tuple[float, float]:
    """Least-squares global scale s (exact ≈ s·approx) and the relative L2 error after it."""
    approx = approx.double()
    s = float((approx * exact).sum() / (approx * approx).sum())
    return s, float((s * approx - exact).norm() / exact.norm())


@pytest.mark.parametrize("dim", [2, 3, 5])
def test_filter_matches_brute_force_on_smooth_images(dim: int) -> None:
    features, values = smooth_scene(24, 28, dim)
    out = permutohedral_filter(values, features)
    scale, error = fitted_error(out, brute_force(values, features))
    assert error <= 0.10, f"relative L2 error {error:.3f} in {dim}-D"
    # The lattice output divided by the exact one: Krähenbühl's C++ gives ≈0.88 (2-D), ≈0.53 (5-D).
    assert 0.3 <= 1.0 / scale <= 3.0


def test_filter_keeps_shape_and_dtype() -> None:
    features, values = smooth_scene(9, 11, 5)
    values = torch.cat((values, values[:, :1]), 1)
    for dtype in (torch.float32, torch.float64):
        out = permutohedral_filter(values.to(dtype), features.to(dtype))
        assert out.shape == values.shape and out.dtype == dtype


def test_lattice_is_linear_time_in_vertices() -> None:
    features, _ = smooth_scene(30, 30, 5)
    lattice = PermutohedralLattice(features)
    assert lattice.num_vertices <= (5 + 1) * features.shape[0]


def explicit_matrix(lattice: PermutohedralLattice, n: int, reverse: bool) -> torch.Tensor:
    return lattice.apply(torch.eye(n, dtype=torch.float64), reverse=reverse)


def test_backward_is_the_adjoint_with_reversed_blur_order() -> None:
    features, _ = smooth_scene(5, 6, 5, theta_xy=1.0, theta_rgb=5.0)
    lattice = PermutohedralLattice(features.double())
    n = features.shape[0]
    forward = explicit_matrix(lattice, n, reverse=False)  # column j = filter(e_j)
    adjoint = explicit_matrix(lattice, n, reverse=True)
    torch.testing.assert_close(adjoint, forward.t())
    # The lattice filter itself is not symmetric, so the reversal is needed.
    assert (forward - forward.t()).abs().max() > 1e-3 * forward.abs().max()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dim", [2, 5])
def test_gradcheck(seed: int, dim: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    features = torch.rand(20, dim, generator=gen, dtype=torch.float64) * 3
    values = torch.rand(20, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    lattice = PermutohedralLattice(features)
    assert torch.autograd.gradcheck(lattice.filter, (values,))


def test_one_lattice_filters_any_number_of_channels() -> None:
    features, values = smooth_scene(10, 10, 3)
    lattice = PermutohedralLattice(features)
    wide = torch.cat([values] * 7, 1)
    torch.testing.assert_close(lattice.filter(wide)[:, :2], lattice.filter(values))


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(HumanParseError):
        PermutohedralLattice(torch.zeros(0, 2))
    with pytest.raises(HumanParseError):
        PermutohedralLattice(torch.zeros(5, 2, dtype=torch.int64))
    with pytest.raises(HumanParseError, match="finite"):
        PermutohedralLattice(torch.tensor([[0.0, float("nan")]]))
    lattice = PermutohedralLattice(torch.rand(5, 2))
    with pytest.raises(HumanParseError):
        lattice.filter(torch.rand(6, 1))
    with pytest.raises(HumanParseError):
        LatticeStack([lattice]).filter(torch.rand(5, 2), torch.ones(2, 2))


def stack_inputs(seed: int, n: int = 20, channels: int = 3):
    gen = torch.Generator().manual_seed(seed)
    f5 = torch.rand(n, 5, generator=gen, dtype=torch.float64) * 3
    f2 = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 3
    values = torch.rand(n, channels, generator=gen, dtype=torch.float64)
    gains = torch.rand(2, channels, generator=gen, dtype=torch.float64) + 0.5
    return PermutohedralLattice(f5).normalised(), PermutohedralLattice(f2).normalised(), values, gains


def test_stack_equals_the_gained_sum_of_its_lattices() -> None:
    a, b, values, gains = stack_inputs(0)
    expected = a.filter(values) * gains[0] + b.filter(values) * gains[1]
    torch.testing.assert_close(LatticeStack([a, b]).filter(values, gains), expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stack_gradcheck_wrt_values_and_gains(seed: int) -> None:
    a, b, values, gains = stack_inputs(seed)
    stack = LatticeStack([a, b])
    assert torch.autograd.gradcheck(stack.filter, (values.requires_grad_(), gains.requires_grad_()))


def test_normalised_lattice_is_d_inverse_sqrt_k_d_inverse_sqrt() -> None:
    features, _ = smooth_scene(6, 7, 3)
    lattice = PermutohedralLattice(features.double())
    n = features.shape[0]
    k = explicit_matrix(lattice, n, reverse=False)
    scale = k.sum(1).rsqrt()
    torch.testing.assert_close(explicit_matrix(lattice.normalised(), n, reverse=False), scale[:, None] * k * scale[None, :])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    features, values = smooth_scene(20, 20, 5)
    cpu = permutohedral_filter(values, features)
    values_cuda = values.cuda().requires_grad_()
    gpu = permutohedral_filter(values_cuda, features.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)
    gpu.sum().backward()
    assert values_cuda.grad is not None and values_cuda.grad.is_cuda
