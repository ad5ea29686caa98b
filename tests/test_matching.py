"""Hungarian matching against brute force, the relabelled ground truth, and OHEM."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from humanparse.errors import HumanParseError
from humanparse.matching import (
    IGNORE_INDEX,
    PAPER_OHEM_FRACTION,
    match_persons,
    matched_instance_loss,
    matched_target,
    ohem_cross_entropy,
    ohem_k,
    person_iou_matrix,
)


def random_case(seed: int, g: int, d: int, p: int = 3, size: int = 12):
    gen = torch.Generator().manual_seed(seed)
    persons = torch.randint(0, g + 1, (size, size), generator=gen) * 7  # arbitrary, sparse ids
    parts = torch.where(persons > 0, torch.randint(1, p + 1, (size, size), generator=gen), torch.zeros_like(persons))
    pred = torch.randint(0, p * d + 1, (size, size), generator=gen)
    return pred, parts, persons


def brute_iou(pred, parts, persons, p, d, gt_ids):
    """Per-pair summed part IoU, straight from the definition."""
    out = np.zeros((len(gt_ids), d))
    for k, pid in enumerate(gt_ids):
        for i in range(1, d + 1):
            for j in range(1, p + 1):
                a = (persons == pid) & (parts == j)
                b = pred == (i - 1) * p + j
                union = (a | b).sum().item()
                out[k, i - 1] += (a & b).sum().item() / union if union else 0.0
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("g,d", [(0, 2), (2, 0), (1, 1), (2, 3), (3, 2), (4, 4)])
def test_hungarian_matching_equals_brute_force(seed: int, g: int, d: int) -> None:
    p = 3
    pred, parts, persons = random_case(seed, g, d, p)
    iou, gt_ids = person_iou_matrix(pred, parts, persons, p, d)
    np.testing.assert_allclose(iou, brute_iou(pred, parts, persons, p, d, gt_ids))
    assignment = match_persons(pred, parts, persons, p, d)
    total = sum(iou[k, det - 1] for k, det in enumerate(assignment.det_for_gt) if det is not None)
    best = 0.0
    for perm in itertools.permutations(range(d), min(g, d)) if g and d else [()]:
        for rows in itertools.permutations(range(len(gt_ids)), len(perm)):
            best = max(best, sum(iou[r, c] for r, c in zip(rows, perm)))
    assert total == pytest.approx(best)
    matched = [det for det in assignment.det_for_gt if det is not None]
    assert len(matched) == len(set(matched))


def test_segments_of_different_parts_have_iou_zero() -> None:
    p = 2
    parts = torch.tensor([[2, 2], [0, 0]])  # person 5's torso (part 2)
    persons = torch.tensor([[5, 5], [0, 0]])
    pred = torch.tensor([[1, 1], [0, 0]])  # detection 1's head (part 1) on the same pixels
    iou, _ = person_iou_matrix(pred, parts, persons, p, 1)
    assert iou[0, 0] == 0.0
    assert match_persons(pred, parts, persons, p, 1).det_for_gt == (None,)


def two_person_probs(p: int = 2, size: int = 8):
    """Person ids 3 (left) and 9 (right); detection 1 predicts the right one, 2 the left."""
    parts = torch.zeros(size, size, dtype=torch.long)
    persons = torch.zeros(size, size, dtype=torch.long)
    parts[1:7, 1:3], persons[1:7, 1:3] = 1, 3
    parts[1:7, 5:7], persons[1:7, 5:7] = 2, 9
    logits = torch.full((2 * p + 1, size, size), -3.0)
    logits[0] = 3.0
    logits[0, 1:7, 5:7], logits[2, 1:7, 5:7] = -3.0, 3.0  # det 1, part 2
    logits[0, 1:7, 1:3], logits[p + 1, 1:7, 1:3] = -3.0, 3.0  # det 2, part 1
    return torch.softmax(logits, 0), parts, persons


def test_matched_target_relabels_persons_with_their_detections() -> None:
    probs, parts, persons = two_person_probs()
    result = matched_instance_loss(probs, parts, persons, num_parts=2, ohem_fraction=None)
    assert result.assignment.gt_ids == (3, 9) and result.assignment.det_for_gt == (2, 1)
    assert bool((result.target == probs.argmax(0)).all())


def test_loss_is_invariant_to_permuting_ground_truth_ids() -> None:
    probs, parts, persons = two_person_probs()
    renamed = torch.where(persons == 3, 40, torch.where(persons == 9, 2, persons))
    a = matched_instance_loss(probs, parts, persons, num_parts=2)
    b = matched_instance_loss(probs, parts, renamed, num_parts=2)
    torch.testing.assert_close(a.loss, b.loss)
    assert bool((a.target == b.target).all())


def test_unmatched_persons_are_ignored_or_background() -> None:
    parts = torch.tensor([[1, 1, 0], [2, 2, 0]])
    persons = torch.tensor([[4, 4, 0], [4, 4, 0]])
    from humanparse.matching import Assignment

    unmatched = Assignment((4,), (None,))
    assert bool((matched_target(parts, persons, unmatched, 2)[:, :2] == IGNORE_INDEX).all())
    assert bool((matched_target(parts, persons, unmatched, 2, ignore_unmatched=False) == 0).all())
    matched = matched_target(parts, persons, Assignment((4,), (2,)), 2)
    assert matched.tolist() == [[3, 3, 0], [4, 4, 0]]


def test_no_detections_ignores_every_person_pixel() -> None:
    _, parts, persons = two_person_probs()
    probs = torch.ones(1, 8, 8)
    result = matched_instance_loss(probs, parts, persons, num_parts=2)
    assert result.assignment.det_for_gt == (None, None)
    assert bool((result.target[persons > 0] == IGNORE_INDEX).all())
    assert result.loss.item() == pytest.approx(0.0, abs=1e-6)


def test_ohem_keeps_exactly_the_k_hardest_pixels() -> None:
    gen = torch.Generator().manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(5, 10, 10, generator=gen), 0)
    target = torch.randint(0, 5, (10, 10), generator=gen)
    target[0] = IGNORE_INDEX
    per_pixel = -log_probs.gather(0, target.clamp(max=4)[None])[0]
    valid = per_pixel[target != IGNORE_INDEX].numpy()
    for k in (1, 7, 30, 90, 500):
        expected = np.sort(valid)[::-1][: min(k, valid.size)].mean()
        assert ohem_cross_entropy(log_probs, target, k).item() == pytest.approx(expected, rel=1e-6)
    assert ohem_cross_entropy(log_probs, target, None).item() == pytest.approx(valid.mean(), rel=1e-6)


def test_ohem_gradient_reaches_only_kept_pixels() -> None:
    probs, parts, persons = two_person_probs()
    probs = probs.clone().requires_grad_()
    k = ohem_k(8, 8, 0.25)
    matched_instance_loss(probs, parts, persons, num_parts=2, ohem_fraction=0.25).loss.backward()
    touched = (probs.grad.abs().sum(0) > 0).sum().item()
    assert touched == k == 16


def test_paper_ohem_fraction_gives_2_to_the_15_at_521() -> None:
    assert ohem_k(521, 521, PAPER_OHEM_FRACTION) == 2**15


def test_all_ignored_gives_a_zero_loss_that_backpropagates() -> None:
    log_probs = torch.zeros(3, 4, 4, requires_grad=True)
    loss = ohem_cross_entropy(log_probs, torch.full((4, 4), IGNORE_INDEX), 5)
    loss.backward()
    assert loss.item() == 0.0 and log_probs.grad is not None


def test_bad_inputs_raise() -> None:
    probs, parts, persons = two_person_probs()
    with pytest.raises(HumanParseError):
        matched_instance_loss(probs, parts[:4], persons, num_parts=2)
    with pytest.raises(HumanParseError):
        matched_instance_loss(probs, parts, persons, num_parts=3)
    with pytest.raises(HumanParseError):
        matched_instance_loss(probs, parts + 5, persons, num_parts=2)


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
