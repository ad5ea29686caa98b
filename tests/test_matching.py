"""Hungarian matching against brute force, the matched ground truth, OHEM and its gradient."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from humanparse.errors import HumanParseError
from humanparse.labels import IGNORE
from humanparse.matching import PAPER_OHEM_FRACTION, Assignment, match_persons, matched_instance_loss, matched_target, ohem_cross_entropy, ohem_k, person_iou_matrix


def random_case(seed: int, g: int, d: int, p: int = 3, size: int = 12):
    """G persons with arbitrary sparse ids, some ignored pixels, and a sparse prediction."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randperm(50, generator=gen)[:g] + 1
    which = torch.randint(0, g + 1, (size, size), generator=gen)
    persons = torch.cat([torch.zeros(1, dtype=torch.long), ids])[which]
    parts = torch.where(persons > 0, torch.randint(1, p + 1, (size, size), generator=gen), 0)
    parts[torch.rand(size, size, generator=gen) < 0.1] = IGNORE
    pred = torch.randint(1, p * d + 1, (size, size), generator=gen) if d else torch.zeros(size, size, dtype=torch.long)
    pred[torch.rand(size, size, generator=gen) < 0.5] = 0  # many zero-IoU pairs, not only noise
    return pred, parts, persons


def iou_by_definition(pred, parts, persons, p: int, d: int, gt_ids: list[int]) -> np.ndarray:
    """Σ_j IoU per (person, detection), one mask pair at a time, ignored pixels left out."""
    keep = parts != IGNORE
    out = np.zeros((len(gt_ids), d))
    for k, pid in enumerate(gt_ids):
        for i in range(1, d + 1):
            for j in range(1, p + 1):
                a = (persons == pid) & (parts == j) & keep
                b = (pred == (i - 1) * p + j) & keep
                union = (a | b).sum().item()
                out[k, i - 1] += (a & b).sum().item() / union if union else 0.0
    return out


def best_total_by_brute_force(score: np.ndarray) -> float:
    """Max over all one-to-one partial matchings: pad to square with zeros, try every permutation."""
    n = max(score.shape)
    square = np.zeros((n, n))
    square[: score.shape[0], : score.shape[1]] = score
    return max((sum(square[r, c] for r, c in enumerate(perm)) for perm in itertools.permutations(range(n))), default=0.0)


@pytest.mark.parametrize("g,d", list(itertools.product(range(5), range(5))))
def test_hungarian_matching_equals_brute_force(g: int, d: int) -> None:
    p = 3
    for seed in range(3):
        pred, parts, persons = random_case(seed, g, d, p)
        iou, gt_ids = person_iou_matrix(pred, parts, persons, p, d)
        expected_ids = sorted(set(persons[(parts > 0) & (parts != IGNORE)].tolist()) - {0})
        assert gt_ids == expected_ids and iou.shape == (len(gt_ids), d) and iou.dtype == np.float64
        np.testing.assert_allclose(iou, iou_by_definition(pred, parts, persons, p, d, gt_ids), atol=1e-12)

        assignment = match_persons(pred, parts, persons, p, d)
        assert assignment.gt_ids == tuple(gt_ids)
        pairs = [(k, det - 1) for k, det in enumerate(assignment.det_for_gt) if det is not None]
        assert all(iou[k, i] > 0 for k, i in pairs), "a zero-IoU pair is not a match"
        assert sum(iou[k, i] for k, i in pairs) == pytest.approx(best_total_by_brute_force(iou), abs=1e-12)


def test_segments_of_different_parts_have_iou_zero() -> None:
    p = 2
    parts = torch.tensor([[2, 2], [0, 0]])  # person A (id 5): torso (part 2)
    persons = torch.tensor([[5, 5], [0, 0]])
    pred = torch.tensor([[1, 1], [0, 0]])  # detection 1 predicts a head (part 1) there
    iou, _ = person_iou_matrix(pred, parts, persons, p, 1)
    assert iou.tolist() == [[0.0]]
    assert match_persons(pred, parts, persons, p, 1).det_for_gt == (None,)
    assert person_iou_matrix(torch.tensor([[2, 2], [0, 0]]), parts, persons, p, 1)[0].tolist() == [[1.0]]


def two_person_probs(p: int = 2, size: int = 8):
    """Person ids 3 (left, part 1) and 9 (right, part 2); detection 1 predicts the right one, 2 the left."""
    parts = torch.zeros(size, size, dtype=torch.long)
    persons = torch.zeros(size, size, dtype=torch.long)
    parts[1:7, 1:3], persons[1:7, 1:3] = 1, 3
    parts[1:7, 5:7], persons[1:7, 5:7] = 2, 9
    logits = torch.randn(2 * p + 1, size, size, generator=torch.Generator().manual_seed(0)) - 2.0
    logits[0] += 5.0
    logits[0, 1:7, 5:7], logits[2, 1:7, 5:7] = -3.0, 3.0  # det 1, part 2
    logits[0, 1:7, 1:3], logits[p + 1, 1:7, 1:3] = -3.0, 3.0  # det 2, part 1
    return torch.softmax(logits, 0), parts, persons


def test_matched_target_relabels_persons_with_their_detections() -> None:
    probs, parts, persons = two_person_probs()
    result = matched_instance_loss(probs, parts, persons, num_parts=2, ohem_fraction=None)
    assert result.assignment == Assignment((3, 9), (2, 1))
    assert torch.equal(result.target, probs.argmax(0))


def test_loss_is_invariant_to_permuting_ground_truth_ids() -> None:
    probs, parts, persons = two_person_probs()
    renamed = torch.where(persons == 3, 40, torch.where(persons == 9, 2, persons))  # and their order swaps
    for fraction in (None, 0.2):
        a = matched_instance_loss(probs, parts, persons, num_parts=2, ohem_fraction=fraction)
        b = matched_instance_loss(probs, parts, renamed, num_parts=2, ohem_fraction=fraction)
        assert torch.equal(a.loss, b.loss)
        assert torch.equal(a.target, b.target)
        assert dict(zip(b.assignment.gt_ids, b.assignment.det_for_gt)) == {2: 1, 40: 2}


def test_unmatched_persons_are_ignored_by_default_or_background() -> None:
    parts = torch.tensor([[1, 1, 0], [2, 255, 0]])
    persons = torch.tensor([[4, 4, 0], [4, 4, 0]])
    unmatched = Assignment((4,), (None,))
    assert matched_target(parts, persons, unmatched, 2).tolist() == [[255, 255, 0], [255, 255, 0]]
    assert matched_target(parts, persons, unmatched, 2, ignore_unmatched=False).tolist() == [[0, 0, 0], [0, 255, 0]]
    assert matched_target(parts, persons, unmatched, 2, ignore_index=-100).tolist() == [[-100, -100, 0], [-100, -100, 0]]
    # Matched to detection 2 of P = 2: part j becomes (2-1)·2 + j.
    assert matched_target(parts, persons, Assignment((4,), (2,)), 2).tolist() == [[3, 3, 0], [4, 255, 0]]


def test_part_pixels_without_a_person_are_ignored() -> None:
    parts = torch.tensor([[1, 2, 0]])
    persons = torch.tensor([[0, 6, 6]])  # a part with no person; a person pixel with no part
    assert matched_target(parts, persons, Assignment((6,), (1,)), 2).tolist() == [[255, 2, 0]]


def test_no_detections_leave_every_person_unmatched() -> None:
    _, parts, persons = two_person_probs()
    iou, gt_ids = person_iou_matrix(torch.zeros(8, 8, dtype=torch.long), parts, persons, 2, 0)
    assert iou.shape == (2, 0) and gt_ids == [3, 9]
    probs = torch.full((1, 8, 8), 0.5, requires_grad=True)  # L = 1: background only
    result = matched_instance_loss(probs, parts, persons, num_parts=2)
    assert result.assignment == Assignment((3, 9), (None, None))
    assert torch.equal(result.target, torch.where(persons > 0, IGNORE, 0))
    assert result.loss.item() == pytest.approx(-np.log(0.5))
    result.loss.backward()
    assert bool((probs.grad[0][persons > 0] == 0).all()) and bool((probs.grad[0][persons == 0] != 0).any())
    as_background = matched_instance_loss(probs, parts, persons, num_parts=2, ignore_unmatched=False)
    assert torch.equal(as_background.target, torch.zeros(8, 8, dtype=torch.long))


def test_ohem_keeps_exactly_the_k_hardest_valid_pixels() -> None:
    rng = np.random.default_rng(0)
    n, labels = 40, 4
    target = torch.from_numpy(rng.integers(0, labels, n))
    nll = rng.uniform(0.1, 5.0, n)  # distinct, so "the K largest" is one set
    log_probs = torch.full((n, labels), -50.0, dtype=torch.float64)
    log_probs[torch.arange(n), target] = torch.from_numpy(-nll)
    ignored = rng.choice(n, 8, replace=False)
    nll[ignored] += 100.0  # the hardest pixels of all, and they must still not count
    target[torch.from_numpy(ignored)] = IGNORE
    valid = np.sort(np.delete(nll, ignored))[::-1]
    for k in (1, 5, 31, 32, 33, 1000):
        expected = valid[: min(k, valid.size)].mean()
        assert ohem_cross_entropy(log_probs, target, k).item() == pytest.approx(expected, rel=1e-12)
    assert ohem_cross_entropy(log_probs, target, None).item() == pytest.approx(valid.mean(), rel=1e-12)
    # The (L, H, W) layout ranks the same pixels.
    image_layout = log_probs.t().reshape(labels, 5, 8)
    assert ohem_cross_entropy(image_layout, target.reshape(5, 8), 7).item() == pytest.approx(valid[:7].mean(), rel=1e-12)


def test_ohem_gradient_reaches_only_the_kept_pixels() -> None:
    probs, parts, persons = two_person_probs()
    probs.requires_grad_()
    result = matched_instance_loss(probs, parts, persons, num_parts=2, ohem_fraction=0.25)
    result.loss.backward()
    k = ohem_k(8, 8, 0.25)
    nll = -torch.log(probs.detach().gather(0, result.target[None])[0]).numpy().ravel()
    kept = np.zeros(64, bool)
    kept[np.argsort(nll)[::-1][:k]] = True
    assert k == 16
    assert result.loss.item() == pytest.approx(nll[kept].mean(), rel=1e-6)
    np.testing.assert_array_equal((probs.grad.abs().sum(0) > 0).numpy().ravel(), kept)


def test_paper_ohem_k_is_2_to_the_15_at_521_and_scales_with_the_image() -> None:
    assert ohem_k(521, 521, PAPER_OHEM_FRACTION) == 2**15
    assert ohem_k(1042, 521, PAPER_OHEM_FRACTION) == 2**16
    assert ohem_k(2, 2, PAPER_OHEM_FRACTION) == 1


def test_no_valid_pixel_gives_a_zero_that_still_backpropagates() -> None:
    log_probs = torch.zeros(3, 4, 4, requires_grad=True)
    loss = ohem_cross_entropy(log_probs, torch.full((4, 4), IGNORE), 5)
    loss.backward()
    assert loss.item() == 0.0 and log_probs.grad is not None


def test_bad_inputs_raise_the_project_error() -> None:
    probs, parts, persons = two_person_probs()
    with pytest.raises(HumanParseError):
        matched_instance_loss(probs, parts[:4], persons, num_parts=2)  # shapes differ
    with pytest.raises(HumanParseError):
        matched_instance_loss(probs, parts, persons, num_parts=3)  # L - 1 = 4 not divisible by 3
    with pytest.raises(HumanParseError):
        matched_instance_loss(probs, parts, persons, num_parts=0)
    with pytest.raises(HumanParseError):
        matched_instance_loss(probs, parts + 5, persons, num_parts=2)  # part labels out of range
    with pytest.raises(HumanParseError):
        matched_instance_loss(probs, parts, persons - 1, num_parts=2)  # negative person ids
    with pytest.raises(HumanParseError):
        matched_instance_loss(probs, parts.float(), persons, num_parts=2)
    with pytest.raises(HumanParseError):
        matched_instance_loss(probs, parts, persons, num_parts=2, ohem_fraction=0.0)
    with pytest.raises(HumanParseError):
        person_iou_matrix(torch.full((8, 8), 5), parts, persons, 2, 2)  # label 5 > P·D
    with pytest.raises(HumanParseError):
        ohem_cross_entropy(torch.zeros(3, 4, 4), torch.zeros(4, 4, dtype=torch.long), 0)
    with pytest.raises(HumanParseError):
        ohem_cross_entropy(torch.zeros(3, 4, 4), torch.full((4, 4), 3), None)  # label 3 of 3 channels
    with pytest.raises(HumanParseError):
        Assignment((1, 2), (1, 1))  # one detection matched twice


def test_boxes_match_persons_an_all_background_prediction_misses() -> None:
    _, parts, persons = two_person_probs()
    probs = torch.zeros(5, 8, 8)
    probs[0] = 1.0  # the network predicts background everywhere
    boxes = torch.tensor([[4.0, 0.0, 8.0, 8.0], [0.0, 0.0, 4.0, 8.0]])  # det 1 right, det 2 left
    without = matched_instance_loss(probs, parts, persons, num_parts=2)
    assert without.assignment.det_for_gt == (None, None)  # zero loss: a fixed point
    with_boxes = matched_instance_loss(probs, parts, persons, num_parts=2, boxes=boxes)
    assert with_boxes.assignment.det_for_gt == (2, 1)
    assert with_boxes.loss.item() > 1.0
    with pytest.raises(HumanParseError):
        matched_instance_loss(probs, parts, persons, num_parts=2, boxes=boxes[:1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_result() -> None:
    probs, parts, persons = two_person_probs()
    boxes = torch.tensor([[4.0, 0.0, 8.0, 8.0], [0.0, 0.0, 4.0, 8.0]])
    cpu = matched_instance_loss(probs, parts, persons, num_parts=2, ohem_fraction=0.25, boxes=boxes)
    gpu = matched_instance_loss(probs.cuda(), parts, persons, num_parts=2, ohem_fraction=0.25, boxes=boxes.cuda())
    assert gpu.assignment == cpu.assignment
    assert torch.equal(gpu.target.cpu(), cpu.target)
    torch.testing.assert_close(gpu.loss.cpu(), cpu.loss)
