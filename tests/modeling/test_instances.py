"""Part map, person map, and the readout of part and person instances (paper Sec. 3.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from humanparse.errors import HumanParseError
from humanparse.labels import LabelSet
from humanparse.modeling.instances import parsing_result, part_map, person_map, upsampled_max


def test_part_and_person_maps() -> None:
    labels = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 0]])  # P = 3, D = 2
    assert part_map(labels, 3).tolist() == [[0, 1, 2, 3], [1, 2, 3, 0]]
    assert person_map(labels, 3).tolist() == [[0, 1, 1, 1], [2, 2, 2, 0]]
    one_part = torch.tensor([[0, 1, 2, 3]], dtype=torch.uint8)  # P = 1: the label is the person
    assert part_map(one_part, 1).tolist() == [[0, 1, 1, 1]]
    assert person_map(one_part, 1).tolist() == [[0, 1, 2, 3]]
    assert part_map(labels, 3).dtype == person_map(labels, 3).dtype == torch.long


def test_upsampled_max_equals_the_max_of_the_whole_upsampled_stack() -> None:
    probs = torch.rand(37, 9, 13)
    probs[30] = probs[3]  # ties across chunks go to the first channel, as argmax's do
    value, index = upsampled_max(probs, (20, 31), chunk=8)
    full = F.interpolate(probs[None], (20, 31), mode="bilinear", align_corners=False)[0]
    assert torch.equal(value, full.max(0).values) and torch.equal(index, full.argmax(0))


def test_upsampled_max_at_the_grid_size_is_the_max_and_without_channels_background() -> None:
    probs = torch.rand(37, 9, 13)
    probs[30] = probs[3]
    value, index = upsampled_max(probs, (9, 13), chunk=8)
    assert torch.equal(value, probs.max(0).values) and torch.equal(index, probs.argmax(0))
    for size in ((9, 13), (20, 31)):
        value, index = upsampled_max(probs[:0], size)
        assert value.shape == index.shape == size and (value == -1).all() and (index == 0).all()


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


TWO_PARTS = LabelSet("two-parts", ("background", "a", "b"), ((0, 0, 0), (255, 0, 0), (0, 255, 0)))


def read_out(probs: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor):
    confidence, labels = probs.max(0)
    return parsing_result(confidence, labels, boxes, scores, TWO_PARTS)


def test_instances_and_scores_by_hand() -> None:
    result = read_out(*hand_example())

    # Detection 1 (score 0.57) becomes person 1, detection 2 (0.2) person 2; 3 has no pixel.
    assert result.ids.tolist() == [1, 2]
    assert result.person_mask(1).tolist() == [[False, True, True, True, False]]
    assert result.person_mask(2).tolist() == [[False, False, False, False, True]]
    assert result.boxes.tolist() == [[0.0, 0.0, 4.0, 1.0], [3.5, 0.0, 5.0, 1.0]]
    assert result.scores[0] == pytest.approx(0.9 * (0.6 + 0.8 + 0.5) / 3)
    assert result.scores[1] == pytest.approx(0.5 * 0.4)

    assert [(p.person, p.part) for p in result.part_instances] == [(1, 1), (1, 2), (2, 2)]
    assert result.part_mask(1, 1).tolist() == [[False, True, True, False, False]]
    assert result.part_mask(1, 2).tolist() == [[False, False, False, True, False]]
    assert result.part_mask(2, 2).tolist() == [[False, False, False, False, True]]
    assert [p.pixels for p in result.part_instances] == [2, 1, 1]


def test_no_detections_or_no_person_pixels_give_no_instances() -> None:
    empty = read_out(torch.ones(1, 3, 3), torch.zeros(0, 4), torch.zeros(0))
    assert len(empty.ids) == 0 and empty.part_instances == () and not empty.persons.any()
    probs = torch.zeros(3, 2, 2)
    probs[0] = 1.0  # one detection, background everywhere
    background = read_out(probs, torch.zeros(1, 4), torch.ones(1))
    assert len(background.ids) == 0 and background.part_instances == () and not background.parts.any()


def test_bad_inputs_raise_the_project_error() -> None:
    probs, boxes, scores = hand_example()
    with pytest.raises(HumanParseError, match="labels"):
        read_out(probs, boxes[:1], scores[:1])  # labels of person 2, but one detection
    with pytest.raises(HumanParseError):
        read_out(probs, boxes, scores[:2])
    with pytest.raises(HumanParseError):
        read_out(probs, boxes[:, :3], scores)
    with pytest.raises(HumanParseError):
        part_map(torch.zeros(2, 2), 2)  # float labels
    with pytest.raises(HumanParseError):
        person_map(torch.zeros(2, 2, dtype=torch.long), 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_result() -> None:
    probs, boxes, scores = hand_example()
    cpu = read_out(probs, boxes, scores)
    gpu = read_out(probs.cuda(), boxes.cuda(), scores.cuda())
    np.testing.assert_array_equal(cpu.parts, gpu.parts)
    np.testing.assert_array_equal(cpu.persons, gpu.persons)
    assert cpu.scores == pytest.approx(gpu.scores)
    assert [(p.person, p.part, p.pixels) for p in cpu.part_instances] == [(p.person, p.part, p.pixels) for p in gpu.part_instances]
    assert torch.equal(part_map(probs.cuda().argmax(0), 2).cpu(), part_map(probs.argmax(0), 2))
