"""Part map, person map and the part and person instances (paper Sec. 3.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from humanparse.errors import HumanParseError
from humanparse.modeling.instances import (
    PartInstance,
    PersonInstance,
    extract_instances,
    part_map,
    person_map,
)


def test_part_and_person_maps() -> None:
    labels = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 0]])  # P = 3, D = 2
    assert part_map(labels, 3).tolist() == [[0, 1, 2, 3], [1, 2, 3, 0]]
    assert person_map(labels, 3).tolist() == [[0, 1, 1, 1], [2, 2, 2, 0]]
    one_part = torch.tensor([[0, 1, 2, 3]], dtype=torch.uint8)  # P = 1: the label is the person
    assert part_map(one_part, 1).tolist() == [[0, 1, 1, 1]]
    assert person_map(one_part, 1).tolist() == [[0, 1, 2, 3]]
    assert part_map(labels, 3).dtype == person_map(labels, 3).dtype == torch.long


def hand_example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """P = 2, D = 3 on a 1×5 image; detection 3 wins no pixel.

    Channels: 0 bg, 1 (1,1), 2 (1,2), 3 (2,1), 4 (2,2), 5 (3,1), 6 (3,2).
    """
    columns = [
        [0.70, 0.10, 0.10, 0.05, 0.05, 0.00, 0.00],  # background
        [0.10, 0.60, 0.10, 0.10, 0.05, 0.05, 0.00],  # (1, 1)
        [0.05, 0.80, 0.05, 0.05, 0.05, 0.00, 0.00],  # (1, 1)
        [0.20, 0.00, 0.50, 0.00, 0.30, 0.00, 0.00],  # (1, 2)
        [0.30, 0.00, 0.00, 0.25, 0.40, 0.00, 0.05],  # (2, 2)
    ]
    probs = torch.tensor(columns).t().reshape(7, 1, 5)
    boxes = torch.tensor([[0.0, 0.0, 4.0, 1.0], [3.5, 0.0, 5.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    scores = torch.tensor([0.9, 0.5, 0.8])
    return probs, boxes, scores


def test_instances_and_scores_by_hand() -> None:
    persons, parts = extract_instances(*hand_example(), num_parts=2)

    assert [p.person for p in persons] == [1, 2]
    assert persons[0].mask.tolist() == [[False, True, True, True, False]]
    assert persons[1].mask.tolist() == [[False, False, False, False, True]]
    assert persons[0].box == (0.0, 0.0, 4.0, 1.0) and persons[1].box == (3.5, 0.0, 5.0, 1.0)
    assert persons[0].score == pytest.approx(0.9 * (0.6 + 0.8 + 0.5) / 3)
    assert persons[1].score == pytest.approx(0.5 * 0.4)

    assert [(p.person, p.part) for p in parts] == [(1, 1), (1, 2), (2, 2)]
    assert parts[0].mask.tolist() == [[False, True, True, False, False]]
    assert parts[1].mask.tolist() == [[False, False, False, True, False]]
    assert parts[2].mask.tolist() == [[False, False, False, False, True]]
    assert [p.score for p in parts] == pytest.approx([0.9 * (0.6 + 0.8) / 2, 0.9 * 0.5, 0.5 * 0.4])
    assert all(isinstance(p.mask, np.ndarray) and p.mask.dtype == np.bool_ for p in [*persons, *parts])


def test_no_detections_or_no_person_pixels_give_no_instances() -> None:
    assert extract_instances(torch.ones(1, 3, 3), torch.zeros(0, 4), torch.zeros(0), num_parts=6) == ([], [])
    probs = torch.zeros(3, 2, 2)
    probs[0] = 1.0  # one detection, background everywhere
    assert extract_instances(probs, torch.zeros(1, 4), torch.ones(1), num_parts=2) == ([], [])


def test_bad_inputs_raise_the_project_error() -> None:
    probs, boxes, scores = hand_example()
    with pytest.raises(HumanParseError):
        extract_instances(probs, boxes[:2], scores[:2], num_parts=2)  # 7 channels, 2 detections
    with pytest.raises(HumanParseError):
        extract_instances(probs, boxes, scores[:2], num_parts=2)
    with pytest.raises(HumanParseError):
        extract_instances(probs, boxes[:, :3], scores, num_parts=2)
    with pytest.raises(HumanParseError):
        part_map(torch.zeros(2, 2), 2)  # float labels
    with pytest.raises(HumanParseError):
        person_map(torch.zeros(2, 2, dtype=torch.long), 0)
    with pytest.raises(HumanParseError):
        PartInstance(1, 0, np.zeros((2, 2), bool), 0.5)  # parts are 1-based
    with pytest.raises(HumanParseError):
        PersonInstance(1, np.zeros((2, 2)), (0.0, 0.0, 1.0, 1.0), 0.5)  # float mask


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_result() -> None:
    probs, boxes, scores = hand_example()
    cpu_persons, cpu_parts = extract_instances(probs, boxes, scores, num_parts=2)
    gpu_persons, gpu_parts = extract_instances(probs.cuda(), boxes.cuda(), scores.cuda(), num_parts=2)
    for a, b in zip([*cpu_persons, *cpu_parts], [*gpu_persons, *gpu_parts], strict=True):
        assert type(a) is type(b) and a.person == b.person and a.score == pytest.approx(b.score)
        np.testing.assert_array_equal(a.mask, b.mask)
    assert torch.equal(part_map(probs.cuda().argmax(0), 2).cpu(), part_map(probs.argmax(0), 2))
