"""Part map, person map and the part and person instances (paper Sec. 3.4)."""

from __future__ import annotations

import pytest
import torch

from humanparse.instances import extract_instances, part_map, person_map


def test_part_and_person_maps() -> None:
    labels = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 0]])  # P = 3, D = 2
    assert part_map(labels, 3).tolist() == [[0, 1, 2, 3], [1, 2, 3, 0]]
    assert person_map(labels, 3).tolist() == [[0, 1, 1, 1], [2, 2, 2, 0]]


def test_instances_and_scores_by_hand() -> None:
    # P = 2, D = 2; detection 2 gets no pixel.
    probs = torch.zeros(5, 1, 4)
    probs[0, 0] = torch.tensor([0.9, 0.0, 0.0, 0.0])
    probs[1, 0] = torch.tensor([0.1, 0.8, 0.6, 0.0])
    probs[2, 0] = torch.tensor([0.0, 0.2, 0.4, 0.7])
    probs[3, 0, 3] = 0.3
    boxes = torch.tensor([[0.0, 0.0, 4.0, 1.0], [1.0, 0.0, 2.0, 1.0]])
    scores = torch.tensor([0.5, 0.9])
    persons, parts = extract_instances(probs, boxes, scores, num_parts=2)
    assert [p.person for p in persons] == [1]
    assert persons[0].mask.tolist() == [[False, True, True, True]]
    assert persons[0].box == (0.0, 0.0, 4.0, 1.0)
    assert persons[0].score == pytest.approx(0.5 * (0.8 + 0.6 + 0.7) / 3)
    assert [(p.person, p.part) for p in parts] == [(1, 1), (1, 2)]
    assert parts[0].mask.tolist() == [[False, True, True, False]]
    assert parts[0].score == pytest.approx(0.5 * 0.7)
    assert parts[1].score == pytest.approx(0.5 * 0.7)


def test_no_detections_give_no_instances() -> None:
    assert extract_instances(torch.ones(1, 3, 3), torch.zeros(0, 4), torch.zeros(0), num_parts=6) == ([], [])
