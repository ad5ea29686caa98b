"""The permutohedral lattice: O(N) high-dimensional Gaussian filtering in plain PyTorch.

Adams, Baek & Davis, "Fast High-Dimensional Filtering Using the Permutohedral Lattice"
(Eurographics 2010), with the conventions of Krähenbühl & Koltun's dense CRF code
(NIPS 2011): features are elevated onto the hyperplane ``H_d`` of ``Z^{d+1}``, every point
is splatted onto the d+1 vertices of its enclosing simplex with barycentric weights, the
lattice is blurred with the kernel [1/2, 1, 1/2] along each of the d+1 lattice axes in
turn, and the result is sliced back with the same weights.

Written as matrices, the filter is ``S^T B_d ... B_1 B_0 S`` with ``S`` the (M, N) splat
matrix and ``B_j`` the (symmetric) blur along axis j. Its adjoint is therefore
``S^T B_0 B_1 ... B_d S``: the same lattice with the blur axes in reverse order, which is
what the backward pass runs. Reusing the forward order instead is a few per cent wrong.

The lattice depends only on the features, so it is built once per image and reused by
every mean-field iteration and by the backward pass. The build is a single sort of the
vertex keys (which de-duplicates them and yields the inverse index); splat and slice are
CSR sparse-matrix products, the blur is a pair of row gathers per axis.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from typing import Tuple

import torch
from torch import Tensor

from ..errors import HumanParseError

__all__ = ["LatticeStack", "PermutohedralLattice", "permutohedral_filter"]

# Keys are packed into one int64 per vertex; stay clear of the sign bit.
_MAX_CODE = 2**62


class PermutohedralLattice:
    """A permutohedral lattice built from per-point features, ready to filter values.

    Args:
        features: (N, d) float tensor, already divided by the kernel widths, so that the
            kernel is ``exp(-|f_i - f_j|^2 / 2)``. Not differentiated: kernel widths are
            fixed hyper-parameters (only the kernel weights are learned downstream).

    The lattice keeps the features' device; it stores weights in the features' dtype and
    casts them to the values' dtype on use.
    """

    def __init__(self, features: Tensor) -> None:
        if features.dim() != 2 or features.shape[0] == 0 or features.shape[1] == 0:
            raise HumanParseError(f"lattice features must be a non-empty (N, d) tensor, got shape {tuple(features.shape)}")
        if not features.is_floating_point():
            raise HumanParseError(f"lattice features must be floating point, got {features.dtype}")
        if not bool(torch.isfinite(features).all()):
            raise HumanParseError("lattice features must be finite (NaN or infinity in the image or positions)")
        features = features.detach()
        n, d = features.shape
        self.num_points = n
        self.dim = d
        self.device = features.device
        codes, weights, neighbour_code = _simplex_vertices(features)
        weights = weights.to(features.dtype)

        # One sort de-duplicates the vertex codes and yields the inverse index.
        sorted_codes, order = torch.sort(codes.reshape(-1))
        is_new = torch.ones_like(sorted_codes, dtype=torch.bool)
        is_new[1:] = sorted_codes[1:] != sorted_codes[:-1]
        vertex_of_sorted = torch.cumsum(is_new, 0) - 1
        unique_codes = sorted_codes[is_new]
        m = int(unique_codes.shape[0])
        self.num_vertices = m

        # Every value buffer has M+1 rows, the last one zero: the blur's missing neighbours
        # point at it, so the blur is two plain row gathers with no masking.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            # Splat: (M+1, N); the sort leaves the entries grouped by vertex, i.e. in CSR order.
            counts = torch.bincount(vertex_of_sorted, minlength=m + 1)
            crow = torch.zeros(m + 2, dtype=torch.int64, device=self.device)
            crow[1:] = torch.cumsum(counts, 0)
            self._splat = _csr(crow, order // (d + 1), weights.reshape(-1)[order], (m + 1, n))

            # Slice: (N, M+1), d+1 entries per point (MKL needs no column order within a row).
            inverse = torch.empty_like(vertex_of_sorted)
            inverse[order] = vertex_of_sorted
            slice_crow = torch.arange(0, n * (d + 1) + 1, d + 1, dtype=torch.int64, device=self.device)
            # Krähenbühl's normalisation constant (his blur weights are not normalised),
            # folded into the slice.
            slice_weights = weights * _slice_constant(d)
            self._slice = _csr(slice_crow, inverse, slice_weights.reshape(-1), (n, m + 1))

        # Blur neighbours along each lattice axis, (M+1,) row indices, M where missing.
        self._neighbours: list[tuple[Tensor, Tensor]] = []
        missing = torch.full((1,), m, dtype=torch.int64, device=self.device)
        for axis in range(d + 1):
            pair = []
            for sign in (1, -1):
                ncode = neighbour_code(unique_codes, axis, sign).to(unique_codes.dtype)
                pos = torch.searchsorted(unique_codes, ncode).clamp_(max=m - 1)
                pos = torch.where(unique_codes[pos] == ncode, pos, missing)
                pair.append(torch.cat((pos, missing)))
            self._neighbours.append((pair[0], pair[1]))

    def filter(self, values: Tensor) -> Tensor:
        """Gaussian-filter ``values``: (N, C) float -> (N, C), differentiable w.r.t. values.

        Approximates ``sum_j exp(-|f_i - f_j|^2 / 2) values_j`` up to one global constant
        (the sum includes j = i).
        """
        if values.dim() != 2 or values.shape[0] != self.num_points:
            raise HumanParseError(
                f"lattice built for {self.num_points} points cannot filter values of shape {tuple(values.shape)}"
            )
        return _LatticeFilter.apply(values, self)

    def apply(self, values: Tensor, reverse: bool = False) -> Tensor:
        """The filter as a plain linear map of (N, C) values, outside autograd; with
        ``reverse`` its adjoint (the blur axes in reverse order), which is the backward pass."""
        v = _blur(_matmul(self._splat, values.contiguous()), self._neighbours, reverse)
        return _matmul(self._slice, v)

    def normalised(self) -> "PermutohedralLattice":
        """The same lattice filtering with ``D^-½ K D^-½``, where ``D = diag(K·1)``.

        Symmetric normalisation, as in Krähenbühl's DenseCRF. The scaling is folded into the
        splat and slice weights, so filtering costs nothing more; the operator stays
        self-adjoint up to the blur order, and the backward pass stays exact.
        """
        scale = self.filter(torch.ones((self.num_points, 1), dtype=self._slice.dtype, device=self.device))
        scale = scale.clamp_min(1e-20).rsqrt().reshape(-1)
        d = self.dim
        out = copy.copy(self)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            splat_values = self._splat.values() * scale[self._splat.col_indices().long()]
            out._splat = _csr(self._splat.crow_indices(), self._splat.col_indices(), splat_values, tuple(self._splat.shape))
            slice_values = (self._slice.values().reshape(-1, d + 1) * scale[:, None]).reshape(-1)
            out._slice = _csr(self._slice.crow_indices(), self._slice.col_indices(), slice_values, tuple(self._slice.shape))
        return out


class LatticeStack:
    """Several lattices over the same points, filtered together: Σ_k gains_k ⊙ K_k v.

    The dense CRF message is a weighted sum of kernels, each scaled per label. Stacking the
    lattices makes that one splat and one slice over the (N, C) values instead of one per
    kernel, and the per-channel gains commute with the filter, so they are applied in
    lattice space, on M ≪ N rows. The splat matrices are stacked vertically, the slice
    matrices side by side, and the blur runs over every block at once (a block with fewer
    axes than the others sees identity steps).

    Args:
        lattices: lattices built from features of the same N points.
    """

    def __init__(self, lattices: Sequence[PermutohedralLattice]) -> None:
        if not lattices or len({lat.num_points for lat in lattices}) != 1:
            raise HumanParseError("a lattice stack needs one or more lattices over the same points")
        self.num_points = lattices[0].num_points
        self.num_kernels = len(lattices)
        rows = [lat.num_vertices + 1 for lat in lattices]
        starts = [sum(rows[:k]) for k in range(len(rows))]
        self._blocks = [(start, start + count) for start, count in zip(starts, rows)]
        # slice = constant · splat^T per lattice, which the gains' gradient needs.
        self._slice_constants = [_slice_constant(lat.dim) for lat in lattices]
        total_rows = sum(rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            nnz = [lat._splat.values().numel() for lat in lattices]
            crow = torch.cat([lattices[0]._splat.crow_indices().long()] + [
                lat._splat.crow_indices()[1:].long() + sum(nnz[:k]) for k, lat in enumerate(lattices) if k > 0
            ])
            col = torch.cat([lat._splat.col_indices() for lat in lattices])
            self._splat = _csr(crow, col, torch.cat([lat._splat.values() for lat in lattices]), (total_rows, self.num_points))
            # Row n of the slice holds d_k + 1 entries of every lattice k, side by side.
            n = self.num_points
            cols = torch.cat([lat._slice.col_indices().long().reshape(n, -1) + start for lat, start in zip(lattices, starts)], 1)
            vals = torch.cat([lat._slice.values().reshape(n, -1) for lat in lattices], 1)
            width = cols.shape[1]
            slice_crow = torch.arange(0, n * width + 1, width, dtype=torch.int64, device=cols.device)
            self._slice = _csr(slice_crow, cols.reshape(-1), vals.reshape(-1), (n, total_rows))
        # Blur: one (plus, minus) pair per axis over all rows; a block without that axis
        # (or its zero row) points at the zero row of the first block, making the step v + 0.
        zero = lattices[0].num_vertices
        self._neighbours: list[tuple[Tensor, Tensor]] = []
        for axis in range(max(lat.dim for lat in lattices) + 1):
            pair = []
            for side in (0, 1):
                parts = []
                for lat, start, count in zip(lattices, starts, rows):
                    if axis <= lat.dim:
                        parts.append(lat._neighbours[axis][side] + start)
                    else:
                        parts.append(torch.full((count,), zero, dtype=torch.int64, device=col.device))
                pair.append(torch.cat(parts))
            self._neighbours.append((pair[0], pair[1]))

    def filter(self, values: Tensor, gains: Tensor) -> Tensor:
        """Σ_k gains[k] ⊙ (K_k values): values (N, C), gains (K, C) -> (N, C).

        Differentiable w.r.t. both values and gains.
        """
        if values.dim() != 2 or values.shape[0] != self.num_points:
            raise HumanParseError(
                f"lattice stack built for {self.num_points} points cannot filter values of shape {tuple(values.shape)}"
            )
        if gains.shape != (self.num_kernels, values.shape[1]):
            raise HumanParseError(f"gains must be ({self.num_kernels}, {values.shape[1]}), got {tuple(gains.shape)}")
        return _StackFilter.apply(values, gains, self)

    def _scale(self, v: Tensor, gains: Tensor) -> Tensor:
        out = torch.empty_like(v)
        for (start, stop), gain in zip(self._blocks, gains):
            torch.mul(v[start:stop], gain, out=out[start:stop])
        return out


class _StackFilter(torch.autograd.Function):
    """out = S^T G B S v with G the per-block gains; its adjoint runs the blur reversed."""

    @staticmethod
    def forward(ctx, values: Tensor, gains: Tensor, stack: LatticeStack) -> Tensor:  # type: ignore[override]
        blurred = _blur(_matmul(stack._splat, values.contiguous()), stack._neighbours, reverse=False)
        ctx.stack = stack
        ctx.save_for_backward(blurred, gains)
        return _matmul(stack._slice, stack._scale(blurred, gains.to(blurred.dtype)))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:  # type: ignore[override]
        stack: LatticeStack = ctx.stack
        blurred, gains = ctx.saved_tensors
        splatted = _matmul(stack._splat, grad.contiguous())
        grad_values = grad_gains = None
        if ctx.needs_input_grad[1]:
            # d out / d gains[k, c] = <slice_k^T grad, B_k splat_k v> over block k, channel c,
            # and slice_k^T = constant_k · splat_k.
            products = splatted * blurred
            grad_gains = torch.stack(
                [products[start:stop].sum(0) * const for (start, stop), const in zip(stack._blocks, stack._slice_constants)]
            ).to(gains.dtype)
        if ctx.needs_input_grad[0]:
            scaled = stack._scale(splatted, gains.to(splatted.dtype))
            grad_values = _matmul(stack._slice, _blur(scaled, stack._neighbours, reverse=True))
        return grad_values, grad_gains, None


def _slice_constant(d: int) -> float:
    """Krähenbühl's normalisation of a d-dimensional lattice (his blur is not normalised)."""
    return 1.0 / (1.0 + 2.0 ** (-d))


def _blur(v: Tensor, neighbours: list[tuple[Tensor, Tensor]], reverse: bool) -> Tensor:
    """Blur lattice values (rows) with [1/2, 1, 1/2] along each axis in turn (or in reverse)."""
    for plus, minus in reversed(neighbours) if reverse else neighbours:
        # v + (v[plus] + v[minus]) / 2, in place on fresh gathers to spare allocations.
        blurred = torch.index_select(v, 0, plus)
        blurred.add_(torch.index_select(v, 0, minus)).mul_(0.5).add_(v)
        v = blurred
    return v


def _csr(crow: Tensor, col: Tensor, value: Tensor, size: tuple[int, int]) -> Tensor:
    # int32 indices: MKL takes them as they are, int64 ones are converted on every product.
    return torch.sparse_csr_tensor(crow.int(), col.int(), value, size=size, check_invariants=False)


def _matmul(matrix: Tensor, dense: Tensor) -> Tensor:
    """Sparse (R, K) @ dense (K, C), with the sparse values cast to the dense dtype."""
    if matrix.dtype != dense.dtype:
        matrix = matrix.to(dense.dtype)
    return matrix @ dense


class _LatticeFilter(torch.autograd.Function):
    """Linear in the values, so the backward pass is the adjoint filter on the gradient."""

    @staticmethod
    def forward(ctx, values: Tensor, lattice: PermutohedralLattice) -> Tensor:  # type: ignore[override]
        ctx.lattice = lattice
        return lattice.apply(values, reverse=False)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return ctx.lattice.apply(grad, reverse=True), None


def permutohedral_filter(values: Tensor, features: Tensor) -> Tensor:
    """Filter values with a Gaussian kernel in feature space.

    Args:
        values: (N, C) float tensor.
        features: (N, d) float tensor, already divided by the kernel widths.

    Returns:
        (N, C) tensor ≈ ``sum_j exp(-|f_i - f_j|^2 / 2) values_j`` (up to one global
        constant), differentiable w.r.t. ``values``. To filter several value tensors with the
        same features, build a :class:`PermutohedralLattice` once instead.
    """
    return PermutohedralLattice(features).filter(values)


def simplex_of(features: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Each point's enclosing simplex, in Adams et al.'s terms: the quotients (N, d+1) float
    of its remainder-0 vertex (rem0 / (d+1)), the ranks (N, d+1) int64 of its coordinates
    and its barycentric weights (N, d+1). Scriptable (``crf_script`` compiles it too).

    A vectorised transcription of their algorithm: elevate onto H_d, round to the nearest
    remainder-0 lattice point, rank the differential to find the simplex, and take
    barycentric coordinates.
    """
    n, d = features.shape[0], features.shape[1]
    dev = features.device
    # The integer steps below are self-consistent for any float input, so float32 suffices:
    # rounding only moves a point that lies on a simplex face, where its weight is ~0.
    dt = features.dtype
    f = features
    # Scale so the lattice blur matches a unit-variance Gaussian (Krähenbühl's constants).
    inv_std = math.sqrt(2.0 / 3.0) * (d + 1)
    idx = torch.arange(d, device=dev, dtype=dt)
    scale = inv_std / torch.sqrt((idx + 1) * (idx + 2))
    # elevated[j] = sum_{k>=j} cf[k] - j * cf[j-1]: one (d+1, d) matrix.
    lift = torch.zeros((d + 1, d), device=dev, dtype=dt)
    for j in range(d + 1):
        lift[j, j:] = 1.0
        if j > 0:
            lift[j, j - 1] = -float(j)
    elevated = (f * scale) @ lift.t()  # (N, d+1)

    up = float(d + 1)
    v = elevated / up
    hi, lo = torch.ceil(v), torch.floor(v)
    quot = torch.where((hi * up - elevated) < (elevated - lo * up), hi, lo)  # rem0 / (d+1)
    rem0 = quot * up
    total = torch.round(quot.sum(1)).long()  # sum(rem0) / (d+1)

    # The rank of coordinate i is its position when the differential elevated - rem0 is
    # sorted in decreasing order, ties broken by index (Adams et al.'s pairwise loop).
    order = torch.argsort(elevated - rem0, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(d + 1, device=dev).expand(n, d + 1))
    rank = rank + total[:, None]
    low = rank < 0
    high = rank > d
    rank = rank + (d + 1) * (low.long() - high.long())
    quot = quot + (low.to(dt) - high.to(dt))
    rem0 = quot * up

    bary = torch.zeros((n, d + 2), device=dev, dtype=dt)
    delta = (elevated - rem0) / up
    bary.scatter_add_(1, d - rank, delta)
    bary.scatter_add_(1, d - rank + 1, -delta)
    bary[:, 0] += 1.0 + bary[:, d + 1]
    return quot, rank, bary[:, : d + 1]


def neighbour_code(codes: Tensor, axis: int, sign: int, d: int, radix: Tensor, total_radix: int) -> Tensor:
    """The packed code of each vertex's blur neighbour along ``axis``: sign +1 is key - 1 on
    every coordinate and + d on ``axis``, sign -1 the opposite. In (remainder, quotient)
    terms: r -> r - 1 (mod d+1), the quotients drop by one when r wraps below 0, and the
    axis coordinate's quotient gains one (sign -1: the mirror image). ``radix`` (d+1,) is
    each axis's place value (0 for the implied last one), ``total_radix`` their sum.
    Scriptable (``crf_script`` compiles it too)."""
    rem = torch.remainder(codes, d + 1)
    if sign > 0:
        wrap = rem == 0
        new_rem = torch.where(wrap, torch.full_like(rem, d), rem - 1)
        shift = -wrap.long() * total_radix + radix[axis]
    else:
        wrap = rem == d
        new_rem = torch.where(wrap, torch.zeros_like(rem), rem + 1)
        shift = wrap.long() * total_radix - radix[axis]
    return codes - rem + new_rem + (d + 1) * shift


def _simplex_vertices(features: Tensor):
    """Packed vertex codes (N, d+1) int64 and barycentric weights (N, d+1) of each simplex.

    The simplex is :func:`simplex_of`'s. Every coordinate of a vertex of remainder r is
    congruent to r modulo d+1, so a vertex is packed as r plus (d+1) times the mixed-radix
    number of the quotients of its first d
    coordinates (the last is implied by their zero sum). The quotients come straight from
    the rounding, so no integer division is needed, and a blur neighbour's code is the
    vertex's code plus a constant (returned as ``neighbour_code(codes, axis, sign)``).
    """
    n, d = features.shape
    dev = features.device
    quot, rank, weights = simplex_of(features)

    # Vertex r of the simplex: coordinate i is rem0_i + r - (d+1)[rank_i > d - r], so its
    # quotient is quot_i - [rank_i > d - r]. Quotients range over [min-1, max]; one more
    # unit each side keeps every blur neighbour (quotients move by at most one) packable.
    q0 = quot[:, :d].long()
    qmin = q0.min(0).values - 2
    span = q0.max(0).values - qmin + 2
    radix_list = [1]
    for s in span.tolist()[:-1]:
        radix_list.append(radix_list[-1] * int(s))
    code_range = radix_list[-1] * int(span[-1]) * (d + 1)
    if code_range >= _MAX_CODE:
        raise HumanParseError(
            "lattice features span too large a range to index; use wider kernels (larger θ) or a smaller image"
        )
    radix = torch.tensor(radix_list, dtype=torch.int64, device=dev)
    base = ((q0 - qmin) * radix).sum(1)  # (N,)
    # Vertex r drops coordinate i iff r >= d+1 - rank_i: accumulate radix_i at that r.
    dropped = torch.zeros((n, d + 2), dtype=torch.int64, device=dev)
    dropped.scatter_add_(1, d + 1 - rank[:, :d], radix.expand(n, d))
    r = torch.arange(d + 1, device=dev)
    for column in range(1, d + 1):  # a running sum; torch's cumsum along short rows is slow
        dropped[:, column] += dropped[:, column - 1]
    codes = r[None, :] + (d + 1) * (base[:, None] - dropped[:, : d + 1])
    if code_range < 2**31:
        codes = codes.int()  # sorts 1.6x faster than int64
    total_radix = int(radix.sum())
    radix_of_axis = torch.tensor(radix_list + [0], dtype=torch.int64, device=dev)  # the implied last coordinate is not packed

    def neighbours_of(vertex_codes: Tensor, axis: int, sign: int) -> Tensor:
        return neighbour_code(vertex_codes, axis, sign, d, radix_of_axis, total_radix)

    return codes, weights, neighbours_of
