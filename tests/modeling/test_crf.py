"""The Instance CRF: shapes, gradients, label permutations and the paper's box cases."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.func import functional_call

from humanparse.errors import HumanParseError
from humanparse.modeling.crf import InstanceCRF, box_masks, subtract_person_sums


def scene(p: int = 2, h: int = 12, w: int = 16, d: int = 2, seed: int = 0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    q = torch.softmax(torch.randn(p + 1, h, w, generator=gen, dtype=dtype) * 2, 0)
    image = torch.rand(3, h, w, generator=gen, dtype=dtype) * 255
    corner = torch.rand(d, 2, generator=gen, dtype=dtype) * torch.tensor([w, h], dtype=dtype) * 0.6
    boxes = torch.cat((corner, corner + torch.tensor([w, h], dtype=dtype) * 0.5), 1)
    scores = torch.rand(d, generator=gen, dtype=dtype) * 0.5 + 0.5
    return q, image, boxes, scores


def test_output_is_a_distribution_over_pd_plus_one_labels() -> None:
    crf = InstanceCRF(num_parts=3)
    for d in (1, 2, 4):
        q, image, boxes, scores = scene(p=3, d=d)
        out = crf(q, image, boxes, scores)
        assert out.shape == (3 * d + 1, 12, 16)
        torch.testing.assert_close(out.sum(0), torch.ones(12, 16))


class SharedByAnotherThread(InstanceCRF):
    """An Instance CRF whose spatial-kernel cache another thread rewrites between any two
    reads, for another window size (what two video workers sharing one parser do)."""

    @property
    def _spatial_cache(self):
        if self.__dict__.get("_other") is not None:
            self.__dict__["_cache"] = self.__dict__["_other"]  # the other thread has just written
        return self.__dict__.get("_cache")

    @_spatial_cache.setter
    def _spatial_cache(self, value) -> None:
        self.__dict__["_cache"] = value


def test_a_cache_rewritten_by_another_thread_does_not_mix_window_sizes() -> None:
    crf = SharedByAnotherThread(num_parts=2)
    q, image, boxes, scores = scene(h=9, w=11)
    crf(q, image, boxes, scores)
    crf.__dict__["_other"] = crf.__dict__["_cache"]  # the other thread's frame: 9 x 11
    q, image, boxes, scores = scene()  # this thread's frame: 12 x 16
    torch.testing.assert_close(crf(q, image, boxes, scores), InstanceCRF(num_parts=2)(q, image, boxes, scores))


def test_no_detections_gives_all_background() -> None:
    q, image, _, _ = scene()
    out = InstanceCRF(num_parts=2)(q, image, torch.zeros(0, 4), torch.zeros(0))
    assert out.shape == (1, 12, 16)
    assert bool((out == 1).all())


def test_zero_iterations_is_the_softmax_of_the_unary() -> None:
    q, image, boxes, scores = scene(p=2, d=2)
    crf = InstanceCRF(num_parts=2, box_weight=1.0, global_weight=0.5, epsilon=1e-3)
    out = crf(q, image, boxes, scores, iterations=0)
    inside = box_masks(boxes, 12, 16)
    y, x = 5, 7
    unary = [(1.0 + 0.5) * q[0, y, x] + 1e-3]
    for i, j in itertools.product(range(2), range(1, 3)):
        unary.append(1.0 * scores[i] * q[j, y, x] * inside[i, y, x] + 0.5 * q[j, y, x] + 1e-3)
    expected = torch.softmax(torch.log(torch.stack(unary)), 0)
    torch.testing.assert_close(out[:, y, x], expected)


def test_compatibility_matches_the_explicit_label_matrix() -> None:
    d, p = 3, 2
    labels = [(0, 0)] + [(i, j) for i in range(1, d + 1) for j in range(1, p + 1)]
    same, other = torch.tensor(0.3, dtype=torch.float64), torch.tensor(1.7, dtype=torch.float64)
    mu = torch.zeros(len(labels), len(labels), dtype=torch.float64)
    for a, (ia, ja) in enumerate(labels):
        for b, (ib, jb) in enumerate(labels):
            if a != b:
                mu[a, b] = same if ia == ib else other
    message = torch.rand(10, len(labels), dtype=torch.float64)
    gain = torch.cat((other.reshape(1), same.expand(d * p)))
    fast = subtract_person_sums(message * gain, d, p, (same - other) / same)
    exact = -(message @ mu.t())
    # Equal up to a per-pixel constant, which the mean-field softmax ignores.
    shift = fast - exact
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift))


def test_compatibility_with_a_background_penalty_matches_the_explicit_label_matrix() -> None:
    d, p = 3, 2
    labels = [(0, 0)] + [(i, j) for i in range(1, d + 1) for j in range(1, p + 1)]
    same, other, apart = (torch.tensor(v, dtype=torch.float64) for v in (0.1, 0.3, 1.7))
    mu = torch.zeros(len(labels), len(labels), dtype=torch.float64)
    for a, (ia, ja) in enumerate(labels):
        for b, (ib, jb) in enumerate(labels):
            if a != b:
                mu[a, b] = apart if 0 in (ia, ib) else same if ia == ib else other
    message = torch.rand(10, len(labels), dtype=torch.float64)
    gain = torch.cat((apart.reshape(1), same.expand(d * p)))
    fast = subtract_person_sums(message * gain, d, p, (same - other) / same, (apart - other) / same)
    exact = -(message @ mu.t())
    shift = fast - exact
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift))


def test_global_shares_divide_the_global_term_among_the_persons() -> None:
    q, image, boxes, scores = scene(p=2, d=2)
    crf = InstanceCRF(num_parts=2, box_weight=1.0, global_weight=0.5, epsilon=1e-3)
    share = torch.rand(2, 12, 16)
    share = share / share.sum(0)
    out = crf(q, image, boxes, scores, iterations=0, global_share=share)
    inside = box_masks(boxes, 12, 16)
    y, x = 6, 3
    unary = [(1.0 + 0.5) * q[0, y, x] + 1e-3]
    for i, j in itertools.product(range(2), range(1, 3)):
        unary.append(1.0 * scores[i] * q[j, y, x] * inside[i, y, x] + 0.5 * share[i, y, x] * q[j, y, x] + 1e-3)
    torch.testing.assert_close(out[:, y, x], torch.softmax(torch.log(torch.stack(unary)), 0))
    with pytest.raises(HumanParseError, match="global_share"):
        crf(q, image, boxes, scores, global_share=share[:1])


@pytest.mark.parametrize("seed", [0, 1])
def test_gradcheck_with_a_background_penalty_masks_and_global_shares(seed: int) -> None:
    crf = InstanceCRF(num_parts=2, iterations=2, same_person_penalty=0.2, other_person_penalty=0.5, background_penalty=1.5).double()
    q, image, boxes, scores = scene(p=2, h=4, w=5, d=2, seed=seed, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    masks = torch.rand(2, 4, 5, generator=gen, dtype=torch.float64)
    share = masks / masks.sum(0)
    names = [name for name, _ in crf.named_parameters()]
    assert "log_background_penalty" in names
    params = [param.detach().clone().requires_grad_() for _, param in crf.named_parameters()]

    def run(q_in, *param_values):
        return functional_call(crf, dict(zip(names, param_values)), (q_in, image, boxes, scores), {"masks": masks, "global_share": share})

    assert torch.autograd.gradcheck(run, (q.requires_grad_(), *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradcheck_wrt_q_scores_and_parameters(seed: int) -> None:
    crf = InstanceCRF(num_parts=2, iterations=2).double()
    q, image, boxes, scores = scene(p=2, h=4, w=5, d=2, seed=seed, dtype=torch.float64)
    names = [name for name, _ in crf.named_parameters()]
    params = [param.detach().clone().requires_grad_() for _, param in crf.named_parameters()]

    def run(q_in, scores_in, *param_values):
        return functional_call(crf, dict(zip(names, param_values)), (q_in, image, boxes, scores_in))

    inputs = (q.requires_grad_(), scores.requires_grad_(), *params)
    assert torch.autograd.gradcheck(run, inputs, eps=1e-6, atol=1e-5)


def test_every_parameter_gets_a_gradient() -> None:
    crf = InstanceCRF(num_parts=2)
    q, image, boxes, scores = scene()
    labels = torch.randint(0, 5, (12, 16))
    out = crf(q.requires_grad_(), image, boxes, scores.requires_grad_())
    torch.nn.functional.nll_loss(torch.log(out)[None], labels[None]).backward()
    for name, param in crf.named_parameters():
        assert param.grad is not None and bool(param.grad.ne(0).any()), name
    assert q.grad is not None and scores.grad is not None


def test_permuting_detections_permutes_the_output_labels() -> None:
    p, d = 2, 3
    # float64: a permutation reorders float sums, and float32 rounding would show.
    crf = InstanceCRF(num_parts=p).double()
    q, image, boxes, scores = scene(p=p, d=d, seed=3, dtype=torch.float64)
    out = crf(q, image, boxes, scores)
    perm = torch.tensor([2, 0, 1])
    permuted = crf(q, image, boxes[perm], scores[perm])
    torch.testing.assert_close(permuted[0], out[0])
    for new, old in enumerate(perm.tolist()):
        torch.testing.assert_close(permuted[1 + new * p : 1 + (new + 1) * p], out[1 + old * p : 1 + (old + 1) * p])


def person_part_scene(h: int = 20, w: int = 30):
    """Q says 'part 1' strongly on columns 0..19 (a person), background elsewhere."""
    q = torch.full((3, h, w), 0.01)
    q[1, :, :20] = 0.98
    q[0, :, 20:] = 0.98
    image = torch.full((3, h, w), 120.0)
    return q, image


def test_pixels_outside_every_box_take_a_person_through_the_global_term() -> None:
    q, image = person_part_scene()
    boxes = torch.tensor([[0.0, 0.0, 10.0, 20.0]])  # a truncated box: the person runs to column 19
    scores = torch.tensor([0.9])
    with_global = InstanceCRF(num_parts=2)(q, image, boxes, scores).argmax(0)
    assert bool((with_global[:, 12:18] == 1).all())
    box_only = InstanceCRF(num_parts=2, global_term=False)(q, image, boxes, scores).argmax(0)
    assert bool((box_only[:, 12:18] == 0).all())
    assert bool((box_only[:, :8] == 1).all())


def test_false_positive_box_on_background_gets_almost_no_pixels() -> None:
    q, image = person_part_scene()
    boxes = torch.tensor([[0.0, 0.0, 20.0, 20.0], [20.0, 0.0, 30.0, 20.0]])  # second box: background only
    scores = torch.tensor([0.9, 0.95])
    labels = InstanceCRF(num_parts=2)(q, image, boxes, scores).argmax(0)
    person_two = (labels >= 3).sum().item()
    assert person_two <= 0.01 * 20 * 10
    assert bool((labels[:, :18] == 1).all())


def test_boxes_partly_or_wholly_outside_the_image() -> None:
    q, image, _, _ = scene(d=2)
    boxes = torch.tensor([[-30.0, -30.0, 5.0, 5.0], [100.0, 100.0, 200.0, 200.0]])
    out = InstanceCRF(num_parts=2)(q, image, boxes, torch.tensor([0.8, 0.9]))
    assert out.shape == (5, 12, 16) and bool(torch.isfinite(out).all())
    inside = box_masks(boxes, 12, 16)
    assert int(inside[0].sum()) == 25 and int(inside[1].sum()) == 0


def test_bad_inputs_raise_clear_errors() -> None:
    crf = InstanceCRF(num_parts=2)
    q, image, boxes, scores = scene()
    with pytest.raises(HumanParseError):
        crf(q[:2], image, boxes, scores)
    with pytest.raises(HumanParseError):
        crf(q, image[:, :5], boxes, scores)
    with pytest.raises(HumanParseError):
        crf(q, image, boxes, scores[:1])
    with pytest.raises(HumanParseError):
        crf(q, image, boxes * float("nan"), scores)
    with pytest.raises(HumanParseError):
        InstanceCRF(num_parts=2, theta_alpha=0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    q, image, boxes, scores = scene(p=2, h=40, w=50, d=3)
    crf = InstanceCRF(num_parts=2)
    cpu = crf(q, image, boxes, scores)
    crf_cuda = InstanceCRF(num_parts=2).cuda()
    q_cuda = q.cuda().requires_grad_()
    gpu = crf_cuda(q_cuda, image.cuda(), boxes.cuda(), scores.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)
    gpu.log().sum().backward()
    assert q_cuda.grad is not None and bool(torch.isfinite(q_cuda.grad).all())
    assert all(p.grad is not None for p in crf_cuda.parameters())


def test_the_mask_term_with_box_masks_and_shared_q_is_the_box_term() -> None:
    q, image, boxes, scores = scene(p=2, d=3)
    crf = InstanceCRF(num_parts=2, iterations=3)
    masks = box_masks(boxes, 12, 16).float()
    person_q = q[1:][None].expand(3, -1, -1, -1)
    torch.testing.assert_close(crf(q, image, boxes, scores, masks=masks, person_q=person_q), crf(q, image, boxes, scores))


def test_the_mask_term_at_zero_iterations() -> None:
    """U_k(i, j) = -ln(w1 · s_i · M_i(k) · Q_ik(j) + w2 · Q_k(j) + ε), pixel by pixel."""
    q, image, boxes, scores = scene(p=2, d=2, seed=3)
    gen = torch.Generator().manual_seed(4)
    masks = torch.rand(2, 12, 16, generator=gen)
    person_q = torch.softmax(torch.randn(2, 3, 12, 16, generator=gen), 1)[:, 1:]
    crf = InstanceCRF(num_parts=2, box_weight=1.0, global_weight=0.5, epsilon=1e-3)
    out = crf(q, image, boxes, scores, iterations=0, masks=masks, person_q=person_q)
    y, x = 6, 3
    unary = [(1.0 + 0.5) * q[0, y, x] + 1e-3]
    for i, j in itertools.product(range(2), range(2)):
        unary.append(scores[i] * masks[i, y, x] * person_q[i, j, y, x] + 0.5 * q[j + 1, y, x] + 1e-3)
    torch.testing.assert_close(out[:, y, x], torch.softmax(torch.log(torch.stack(unary)), 0))


def test_gradcheck_through_the_mask_term() -> None:
    crf = InstanceCRF(num_parts=2, iterations=2).double()
    q, image, boxes, scores = scene(p=2, h=4, w=5, d=2, seed=5, dtype=torch.float64)
    gen = torch.Generator().manual_seed(6)
    masks = torch.rand(2, 4, 5, generator=gen, dtype=torch.float64).requires_grad_()
    person_q = torch.rand(2, 2, 4, 5, generator=gen, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda m, pq: crf(q, image, boxes, scores, masks=m, person_q=pq), (masks, person_q), eps=1e-6, atol=1e-5)


def test_mask_and_person_q_shapes_are_checked() -> None:
    q, image, boxes, scores = scene(p=2, d=2)
    crf = InstanceCRF(num_parts=2)
    with pytest.raises(HumanParseError, match="masks must be"):
        crf(q, image, boxes, scores, masks=torch.ones(3, 12, 16))
    with pytest.raises(HumanParseError, match="person_q must be"):
        crf(q, image, boxes, scores, person_q=torch.ones(2, 3, 12, 16))
