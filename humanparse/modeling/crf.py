"""The Instance CRF (paper Sec. 3.2, appendix B.2.2): parts of Q assigned to detections.

Labels are ``{(0, 0)} ∪ {1..D} × {1..P}``; channel 0 is background and channel
``(i-1)·P + j`` is part j of detection i, so the output has ``P·D + 1`` channels.

Unary (paper eq. 1–3), for pixel k and label (i, j)::

    U_k(i, j) = -ln(w1 · s_i · Q_k(j) · [k ∈ B_i] + w2 · Q_k(j) + ε)
    U_k(0, 0) = -ln(w1 · Q_k(0) + w2 · Q_k(0) + ε)

The paper leaves the box term of the background label undefined; ``Q_k(0)`` keeps
background competitive inside and outside every box.

Pairwise (appendix eq. 5–6): a bilateral kernel on (position/θα, colour/θβ) with weight
w⁽¹⁾ and a spatial kernel on position/θγ with weight w⁽²⁾, filtered on permutohedral
lattices with symmetric normalisation D^-½ K D^-½ (as Krähenbühl's DenseCRF does by
default). The label count changes with D, so the compatibility cannot be a learned L×L
matrix: it takes one learned penalty for "same person, different part" and one for
"different person" (background counts as a person of its own). Equal penalties are Potts,
which is where training starts. Optionally a third, "person and background", sets background
apart from the other persons: where two persons' boxes overlap each holds part of the person
mass, and with background as one more person the kernels hand the split pixels to background
(the real-photo parser measured 3 points of coarse mIoU lost that way); with a smaller
"different person" penalty, persons side together against background.

Inference is mean-field, unrolled for T iterations as a recurrent layer (CRF-as-RNN,
Zheng et al. 2015); every step is differentiable w.r.t. Q, the detection scores and the
CRF's parameters. Positive parameters are learned as logarithms.

Units. θα and θγ are in pixels of the image the CRF runs on and θβ in 0–255 intensity
levels. The defaults are Krähenbühl & Koltun's (θα = 80, θβ = 13, θγ = 3). The paper's
random search reports θα = 2, θβ = 8, θγ = 2 without units; read as pixels they make the
bilateral kernel as local as the spatial one (no long-range colour consistency at all),
so only its kernel weights w⁽¹⁾ = 8 and w⁽²⁾ = 2 are taken as initial values. θ is fixed,
not learned.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import HumanParseError
from .lattice import LatticeStack, PermutohedralLattice

__all__ = ["InstanceCRF", "box_masks"]


class InstanceCRF(nn.Module):
    """Instance CRF over D detections and P part classes.

    Args:
        num_parts: P, the number of part classes (background excluded).
        iterations: T, mean-field iterations (5 while training; an inference option).
        box_weight, global_weight, epsilon: initial w1, w2 and ε of the unary.
        bilateral_weight, spatial_weight: initial w⁽¹⁾, w⁽²⁾ of the pairwise kernels.
        same_person_penalty, other_person_penalty: initial compatibility penalties.
        background_penalty: initial penalty between a person's label and background (None:
            background is one more person, ``other_person_penalty``, and not learned apart).
        theta_alpha, theta_beta, theta_gamma: kernel widths (pixels, intensity levels).
        global_term: False drops the global potential (w2 = 0, not learned): the paper's
            "box term only" ablation.
    """

    def __init__(
        self,
        num_parts: int,
        iterations: int = 5,
        *,
        box_weight: float = 1.0,
        global_weight: float = 0.1,
        epsilon: float = 1e-3,
        bilateral_weight: float = 8.0,
        spatial_weight: float = 2.0,
        same_person_penalty: float = 1.0,
        other_person_penalty: float = 1.0,
        background_penalty: float | None = None,
        theta_alpha: float = 80.0,
        theta_beta: float = 13.0,
        theta_gamma: float = 3.0,
        global_term: bool = True,
    ) -> None:
        super().__init__()
        if num_parts < 1:
            raise HumanParseError(f"the Instance CRF needs at least one part class, got {num_parts}")
        if iterations < 0:
            raise HumanParseError(f"mean-field iterations must be >= 0, got {iterations}")
        for name, value in (
            ("box_weight", box_weight), ("epsilon", epsilon), ("bilateral_weight", bilateral_weight),
            ("spatial_weight", spatial_weight), ("same_person_penalty", same_person_penalty),
            ("other_person_penalty", other_person_penalty), ("theta_alpha", theta_alpha),
            ("theta_beta", theta_beta), ("theta_gamma", theta_gamma),
        ) + ((("global_weight", global_weight),) if global_term else ()) + ((("background_penalty", background_penalty),) if background_penalty is not None else ()):
            if not value > 0:
                raise HumanParseError(f"Instance CRF parameter {name} must be positive, got {value}")
        self.num_parts = num_parts
        self.iterations = iterations
        self.theta_alpha = float(theta_alpha)
        self.theta_beta = float(theta_beta)
        self.theta_gamma = float(theta_gamma)
        self.global_term = global_term
        self.log_box_weight = nn.Parameter(torch.tensor(math.log(box_weight)))
        self.log_global_weight = nn.Parameter(torch.tensor(math.log(global_weight))) if global_term else None
        self.log_epsilon = nn.Parameter(torch.tensor(math.log(epsilon)))
        self.log_kernel_weights = nn.Parameter(torch.tensor([math.log(bilateral_weight), math.log(spatial_weight)]))
        self.log_penalties = nn.Parameter(torch.tensor([math.log(same_person_penalty), math.log(other_person_penalty)]))
        self.log_background_penalty = nn.Parameter(torch.tensor(math.log(background_penalty))) if background_penalty is not None else None
        # The spatial lattice depends only on the image size: reuse it across frames.
        self._spatial_cache: tuple[tuple, PermutohedralLattice] | None = None

    def extra_repr(self) -> str:
        return (
            f"num_parts={self.num_parts}, iterations={self.iterations}, theta=({self.theta_alpha}, "
            f"{self.theta_beta}, {self.theta_gamma}), global_term={self.global_term}"
        )

    def forward(
        self,
        q: Tensor,
        image: Tensor,
        boxes: Tensor,
        scores: Tensor,
        iterations: int | None = None,
        masks: Tensor | None = None,
        person_q: Tensor | None = None,
        global_share: Tensor | None = None,
    ) -> Tensor:
        """Instance-level part probabilities.

        Args:
            q: (P+1, H, W) float part probabilities from the segmenter (0 = background).
            image: (3, H, W) float RGB in 0..255, for the bilateral kernel.
            boxes: (D, 4) float x1 y1 x2 y2 in pixels; may lie partly or wholly outside.
            scores: (D,) float detection scores in [0, 1].
            iterations: mean-field iterations; defaults to the module's ``iterations``.
            masks: (D, H, W) float soft person masks in [0, 1]: the **mask term**
                ``w1 · s_i · M_i(k) · Q_ik(j)`` takes them in place of the box indicator
                (None: the boxes, the paper's box term).
            person_q: (D, P, H, W) float part probabilities of each person, Q_ik(j), for the
                mask or box term (None: Q's parts for every person, as in the paper). The
                global term always takes ``q``.
            global_share: (D, H, W) float, how the global term divides Q_k(j) among the
                persons, ``w2 · G_i(k) · Q_k(j)``, summing to 1 over i where given (None:
                every person gets all of it, ``w2 · Q_k(j)``, the paper's). With shares the
                person labels' total stays Q's person probability, however many persons
                there are.

        Returns:
            (P·D+1, H, W) probabilities, channel ``(i-1)·P + j`` = part j of detection i.
        """
        p1, h, w = self._check(q, image, boxes, scores)
        t_max = self.iterations if iterations is None else iterations
        n, d, p = h * w, boxes.shape[0], p1 - 1
        if masks is not None and tuple(masks.shape) != (d, h, w):
            raise HumanParseError(f"masks must be ({d}, {h}, {w}) for {d} detections, got {tuple(masks.shape)}")
        if person_q is not None and tuple(person_q.shape) != (d, p, h, w):
            raise HumanParseError(f"person_q must be ({d}, {p}, {h}, {w}), got {tuple(person_q.shape)}")
        if global_share is not None and tuple(global_share.shape) != (d, h, w):
            raise HumanParseError(f"global_share must be ({d}, {h}, {w}) for {d} detections, got {tuple(global_share.shape)}")
        if d == 0:
            return q.new_ones((1, h, w))

        qn = q.reshape(p1, n).t().contiguous()  # pixel-major (N, P+1): the lattice filters rows
        inside = (box_masks(boxes, h, w) if masks is None else masks).reshape(d, n).t().to(q.dtype)  # (N, D)
        w1 = self.log_box_weight.exp()
        w2 = self.log_global_weight.exp() if self.log_global_weight is not None else q.new_zeros(())
        eps = self.log_epsilon.exp()
        shares = w2 if global_share is None else w2 * global_share.reshape(d, n).t().to(q.dtype)[:, :, None]  # (N, D, 1)
        if person_q is None:
            person = qn[:, None, 1:] * (w1 * scores[None, :, None] * inside[:, :, None] + shares)  # (N, D, P)
        else:
            own = person_q.reshape(d, p, n).permute(2, 0, 1)  # (N, D, P)
            person = w1 * scores[None, :, None] * inside[:, :, None] * own + shares * qn[:, None, 1:]
        background = (w1 + w2) * qn[:, :1]
        logits = torch.log(torch.cat((background, person.reshape(n, d * p)), 1) + eps)
        probs = _softmax_rows(logits)
        if t_max == 0:
            return probs.t().contiguous().reshape(d * p + 1, h, w)

        kernels = self._kernels(image, h, w, q.dtype)
        same, other = self.log_penalties.exp()
        apart = other if self.log_background_penalty is None else self.log_background_penalty.exp()
        # Kernel weights and compatibility are both linear in the message: fold them into
        # one per-label gain per kernel, applied inside the lattice filter.
        gain = torch.cat((apart.reshape(1), same.expand(d * p)))
        gains = self.log_kernel_weights.exp()[:, None] * gain[None, :]  # (2, L)
        person_share = (same - other) / same
        people_share = None if self.log_background_penalty is None else (apart - other) / same
        for _ in range(t_max):
            pairwise = kernels.filter(probs, gains)
            probs = _softmax_rows(logits + subtract_person_sums(pairwise, d, p, person_share, people_share))
        return probs.t().contiguous().reshape(d * p + 1, h, w)

    def _kernels(self, image: Tensor, h: int, w: int, dtype: torch.dtype) -> LatticeStack:
        """The bilateral and spatial kernels, normalised, stacked for one-pass filtering."""
        ys, xs = torch.meshgrid(
            torch.arange(h, device=image.device, dtype=dtype),
            torch.arange(w, device=image.device, dtype=dtype),
            indexing="ij",
        )
        position = torch.stack((xs, ys), -1).reshape(h * w, 2)
        colour = image.detach().to(dtype).reshape(3, h * w).t()
        bilateral = PermutohedralLattice(torch.cat((position / self.theta_alpha, colour / self.theta_beta), 1)).normalised()
        key = (h, w, self.theta_gamma, image.device, dtype)
        # Read once: video workers share this module, and another thread's frame (another
        # window size) may replace the cache between a check and a second read.
        cached = self._spatial_cache
        if cached is None or cached[0] != key:
            cached = (key, PermutohedralLattice(position / self.theta_gamma).normalised())
            self._spatial_cache = cached
        return LatticeStack([bilateral, cached[1]])

    def _check(self, q: Tensor, image: Tensor, boxes: Tensor, scores: Tensor) -> tuple[int, int, int]:
        if q.dim() != 3 or q.shape[0] != self.num_parts + 1:
            raise HumanParseError(
                f"Instance CRF for {self.num_parts} parts expects Q of shape ({self.num_parts + 1}, H, W), got {tuple(q.shape)}"
            )
        p1, h, w = q.shape
        if image.shape != (3, h, w):
            raise HumanParseError(f"image must be (3, {h}, {w}) to match Q, got {tuple(image.shape)}")
        if boxes.dim() != 2 or boxes.shape[1] != 4 or scores.shape != (boxes.shape[0],):
            raise HumanParseError(
                f"boxes must be (D, 4) and scores (D,), got {tuple(boxes.shape)} and {tuple(scores.shape)}"
            )
        if not bool(torch.isfinite(boxes).all()) or not bool(torch.isfinite(scores).all()):
            raise HumanParseError("boxes and scores must be finite")
        return p1, h, w


def box_masks(boxes: Tensor, height: int, width: int) -> Tensor:
    """Which pixels lie in which box: (D, 4) x1 y1 x2 y2 pixels -> (D, H, W) bool.

    A pixel is inside when its centre (x + ½, y + ½) is; boxes may extend past the image.
    """
    centre_x = torch.arange(width, device=boxes.device, dtype=boxes.dtype) + 0.5
    centre_y = torch.arange(height, device=boxes.device, dtype=boxes.dtype) + 0.5
    in_x = (centre_x[None, :] >= boxes[:, 0:1]) & (centre_x[None, :] <= boxes[:, 2:3])  # (D, W)
    in_y = (centre_y[None, :] >= boxes[:, 1:2]) & (centre_y[None, :] <= boxes[:, 3:4])  # (D, H)
    return in_y[:, :, None] & in_x[:, None, :]


def subtract_person_sums(scaled: Tensor, d: int, p: int, person_share: Tensor, people_share: Tensor | None = None) -> Tensor:
    """Finish -Σ_l' μ(l, l') m(l') up to a per-pixel constant, in O(N·L) (in place in inference).

    μ is 0 for equal labels, ``same`` for two parts of one person, ``other`` for different
    persons and ``apart`` between a person and background (``other`` unless given). With
    S_i the per-person sum of the message m and T_p = Σ_i S_i, the energies are
    ``same·(S_i - m_ij) + other·(T_p - S_i) + apart·m_0`` and ``apart·T_p``; adding
    ``apart·(T_p + m_0)``, which the softmax ignores, leaves the logits
    ``same·m_ij - (same - other)·S_i + (apart - other)·T_p`` and ``apart·m_0``.

    Args:
        scaled: (N, P·D+1) message already multiplied by (apart, same, …, same).
        person_share: (same - other) / same, so that (same - other)·S_i is
            person_share times the per-person sum of ``scaled``.
        people_share: (apart - other) / same, likewise for T_p (None: apart = other).
    """
    n = scaled.shape[0]
    # Per-person sums as a product with a (D·P, D) block indicator: BLAS is several times
    # faster than torch's reduction over a short inner dimension on the CPU.
    indicator = torch.eye(d, dtype=scaled.dtype, device=scaled.device).repeat_interleave(p, 0)
    coefficients = indicator * person_share
    if people_share is not None:
        coefficients = coefficients - people_share  # every person's sums gain (apart - other)·T_p
    sums = scaled[:, 1:] @ coefficients  # (N, D)
    parts = scaled[:, 1:].view(n, d, p)
    if scaled.requires_grad:  # the product above saved `scaled` for its backward pass
        return torch.cat((scaled[:, :1], (parts - sums[:, :, None]).view(n, d * p)), 1)
    parts.sub_(sums[:, :, None])  # a view: the subtraction lands in `scaled`
    return scaled


def _softmax_rows(logits: Tensor) -> Tensor:
    """Softmax over the labels of (N, L) logits.

    torch's CPU softmax over a last dimension shorter than 16 is slow (measured here at
    N = 271k: 20–35 ms for L = 7..15 against 3–6 ms for the explicit form below); from 16
    labels on it is the faster one (3–7 ms against 6–18).
    """
    if logits.shape[1] >= 16 or logits.device.type != "cpu":
        return torch.softmax(logits, 1)
    e = torch.exp(logits - logits.amax(1, keepdim=True).detach())
    return e / e.sum(1, keepdim=True)
