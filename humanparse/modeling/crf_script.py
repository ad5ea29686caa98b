"""The Instance CRF's inference as TorchScript, for ``humanparse export --format torchscript``.

:class:`ScriptableCRF` runs the mean field of :class:`humanparse.modeling.crf.InstanceCRF`
with its learned values frozen. It compiles with ``torch.jit.script`` and loads with
``torch.jit.load`` (Python or C++), without humanparse. It is the same computation written
for the compiler, not a trace:

- the permutohedral lattice (``modeling/lattice.py``) packs vertex codes in a mixed radix
  taken from the image's feature range. Here that radix is computed with tensor operations
  at run time, so every image gets its own, where a trace would freeze the example's;
- splat and slice are ``index_add_`` and gathers, in place of the sparse CSR products;
- the two kernels are filtered one after the other, in place of the stacked pass;
- there are no custom autograd functions. It is for inference only; training keeps
  ``InstanceCRF``.

It agrees with ``InstanceCRF`` to float rounding (``tests/modeling/test_crf_script.py``).
Its memory is higher: the splat holds (d + 1) rows a pixel, about 6 × N × L floats for the
bilateral kernel. humanparse itself runs ``InstanceCRF``.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from .crf import InstanceCRF, box_masks
from .lattice import neighbour_code, simplex_of

__all__ = ["ScriptableCRF"]


def _simplex(features: Tensor) -> Tuple[Tensor, Tensor, Tensor, int]:
    """Vertex codes (N, d+1) int64, barycentric weights (N, d+1), each axis's radix (d+1,)
    int64 (0 for the implied last coordinate) and the radices' sum: lattice.py's
    ``_simplex_vertices`` with the radix computed by tensor operations."""
    n, d = features.shape[0], features.shape[1]
    dev = features.device
    quot, rank, weights = simplex_of(features)
    q0 = quot[:, :d].long()
    qmin = q0.min(0).values - 2
    span = q0.max(0).values - qmin + 2
    radix = torch.ones(d, dtype=torch.int64, device=dev)
    if d > 1:
        radix[1:] = torch.cumprod(span[:-1], 0)
    if float(radix[-1]) * float(span[-1]) * (d + 1) >= 2.0**62:  # lattice.py's bound: int64 neighbour arithmetic
        raise RuntimeError("lattice features span too large a range to index; use wider kernels (larger theta) or a smaller image")
    base = ((q0 - qmin) * radix).sum(1)
    dropped = torch.zeros((n, d + 2), dtype=torch.int64, device=dev)
    dropped.scatter_add_(1, d + 1 - rank[:, :d], radix.expand(n, d))
    dropped = torch.cumsum(dropped, 1)
    codes = torch.arange(d + 1, device=dev)[None, :] + (d + 1) * (base[:, None] - dropped[:, : d + 1])
    return codes, weights, torch.cat((radix, radix.new_zeros(1))), int(radix.sum())


def _lattice(features: Tensor) -> Tuple[Tensor, Tensor, Tensor, List[Tuple[Tensor, Tensor]], int]:
    """A normalised lattice: each point's vertex rows (N, d+1), splat and slice weights
    (N, d+1), the blur's (plus, minus) rows per axis over M+1 rows (row M is zero), and M."""
    n, d = features.shape[0], features.shape[1]
    codes, weights, radix, total_radix = _simplex(features)
    sorted_codes, order = torch.sort(codes.reshape(-1))
    is_new = torch.ones_like(sorted_codes, dtype=torch.bool)
    is_new[1:] = sorted_codes[1:] != sorted_codes[:-1]
    vertex_of_sorted = torch.cumsum(is_new.long(), 0) - 1
    unique = sorted_codes[is_new]
    m = unique.shape[0]
    inverse = torch.empty_like(vertex_of_sorted)
    inverse[order] = vertex_of_sorted
    rows = inverse.reshape(n, d + 1)
    missing = torch.full((1,), m, dtype=torch.int64, device=features.device)
    neighbours: List[Tuple[Tensor, Tensor]] = []
    for axis in range(d + 1):
        pair: List[Tensor] = []
        for sign in (1, -1):
            code = neighbour_code(unique, axis, sign, d, radix, total_radix)
            pos = torch.searchsorted(unique, code).clamp(max=m - 1)
            pos = torch.where(unique[pos] == code, pos, missing)
            pair.append(torch.cat((pos, missing)))
        neighbours.append((pair[0], pair[1]))
    # Krähenbühl's constant (his blur is not normalised), then D^-1/2 K D^-1/2.
    raw_slice = weights * (1.0 / (1.0 + 2.0 ** (-d)))
    ones = torch.ones((n, 1), dtype=weights.dtype, device=weights.device)
    scale = _filter(ones, rows, weights, raw_slice, neighbours, m).clamp_min(1e-20).rsqrt()
    return rows, weights * scale, raw_slice * scale, neighbours, m


def _filter(values: Tensor, rows: Tensor, splat: Tensor, slice_: Tensor, neighbours: List[Tuple[Tensor, Tensor]], m: int) -> Tensor:
    """Splat (N, C) values onto the lattice, blur [1/2, 1, 1/2] along each axis, slice back."""
    n, c, k = values.shape[0], values.shape[1], rows.shape[1]
    lattice = values.new_zeros((m + 1, c)).index_add_(0, rows.reshape(-1), (values[:, None, :] * splat[:, :, None]).reshape(n * k, c))
    for plus, minus in neighbours:
        lattice = lattice + 0.5 * (lattice.index_select(0, plus) + lattice.index_select(0, minus))
    return (lattice.index_select(0, rows.reshape(-1)).reshape(n, k, c) * slice_[:, :, None]).sum(1)


class ScriptableCRF(nn.Module):
    """``InstanceCRF``'s forward with its current learned values, for ``torch.jit.script``.

    ``forward(q, image, boxes, scores, iterations=None, masks=None, person_q=None,
    global_share=None)`` takes and returns what :meth:`InstanceCRF.forward` does (its
    docstring has the shapes); ``iterations`` defaults to the CRF's own.
    """

    def __init__(self, crf: InstanceCRF) -> None:
        super().__init__()
        with torch.no_grad():
            self.register_buffer("box_weight", crf.log_box_weight.exp().float().clone())
            glob = crf.log_global_weight.exp() if crf.log_global_weight is not None else torch.zeros(())
            self.register_buffer("global_weight", glob.float().clone())
            self.register_buffer("epsilon", crf.log_epsilon.exp().float().clone())
            self.register_buffer("kernel_weights", crf.log_kernel_weights.exp().float().clone())
            self.register_buffer("penalties", crf.log_penalties.exp().float().clone())
            apart = crf.log_background_penalty.exp() if crf.log_background_penalty is not None else torch.full((), -1.0)
            self.register_buffer("background_penalty", apart.float().clone())  # < 0: background is one more person
        self.num_parts = crf.num_parts
        self.iterations = crf.iterations
        self.theta_alpha, self.theta_beta, self.theta_gamma = crf.theta_alpha, crf.theta_beta, crf.theta_gamma

    def forward(self, q: Tensor, image: Tensor, boxes: Tensor, scores: Tensor, iterations: Optional[int] = None, masks: Optional[Tensor] = None,
                person_q: Optional[Tensor] = None, global_share: Optional[Tensor] = None) -> Tensor:
        p1, h, w = q.shape[0], q.shape[1], q.shape[2]
        if p1 != self.num_parts + 1:
            raise RuntimeError("Q must hold background and the CRF's parts")
        n, d, p = h * w, boxes.shape[0], p1 - 1
        if d == 0:
            return q.new_ones((1, h, w))
        qn = q.reshape(p1, n).t()
        inside = box_masks(boxes, h, w).to(q.dtype) if masks is None else masks.to(q.dtype)
        inside = inside.reshape(d, n).t()
        w1, w2 = self.box_weight, self.global_weight
        shares = w2.reshape(1, 1, 1) if global_share is None else w2 * global_share.reshape(d, n).t().to(q.dtype)[:, :, None]
        if person_q is None:
            person = qn[:, None, 1:] * (w1 * scores[None, :, None] * inside[:, :, None] + shares)
        else:
            own = person_q.reshape(d, p, n).permute(2, 0, 1)
            person = w1 * scores[None, :, None] * inside[:, :, None] * own + shares * qn[:, None, 1:]
        background = (w1 + w2) * qn[:, :1]
        logits = torch.log(torch.cat((background, person.reshape(n, d * p)), 1) + self.epsilon)
        probs = torch.softmax(logits, 1)
        t_max = self.iterations if iterations is None else iterations
        if t_max == 0:
            return probs.t().reshape(d * p + 1, h, w)

        ys, xs = torch.meshgrid(torch.arange(h, device=q.device, dtype=q.dtype), torch.arange(w, device=q.device, dtype=q.dtype), indexing="ij")
        position = torch.stack((xs, ys), -1).reshape(n, 2)
        colour = image.to(q.dtype).reshape(3, n).t()
        b_rows, b_splat, b_slice, b_neighbours, b_m = _lattice(torch.cat((position / self.theta_alpha, colour / self.theta_beta), 1))
        s_rows, s_splat, s_slice, s_neighbours, s_m = _lattice(position / self.theta_gamma)
        same, other = self.penalties[0], self.penalties[1]
        apart = other if float(self.background_penalty) < 0 else self.background_penalty
        gain = torch.cat((apart.reshape(1), same.expand(d * p)))
        bilateral_gain, spatial_gain = self.kernel_weights[0] * gain, self.kernel_weights[1] * gain
        # InstanceCRF's subtract_person_sums: same·m_ij - (same - other)·S_i + (apart - other)·T_p.
        coefficients = torch.eye(d, dtype=q.dtype, device=q.device).repeat_interleave(p, 0) * ((same - other) / same)
        if float(self.background_penalty) >= 0:
            coefficients = coefficients - (apart - other) / same
        for _ in range(t_max):
            message = bilateral_gain * _filter(probs, b_rows, b_splat, b_slice, b_neighbours, b_m)
            message = message + spatial_gain * _filter(probs, s_rows, s_splat, s_slice, s_neighbours, s_m)
            sums = message[:, 1:] @ coefficients
            parts = message[:, 1:].reshape(n, d, p) - sums[:, :, None]
            probs = torch.softmax(logits + torch.cat((message[:, :1], parts.reshape(n, d * p)), 1), 1)
        return probs.t().reshape(d * p + 1, h, w)
