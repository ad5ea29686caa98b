"""Pictures for people: each person's id is drawn on the person, inside the image."""

from __future__ import annotations

import numpy as np
import pytest

from humanparse.io.drawing import label_origin, overlay
from humanparse.labels import PASCAL_PERSON_PART
from humanparse.structures import ParsingResult


def one_person(box: tuple[int, int, int, int], size: tuple[int, int] = (120, 160)) -> ParsingResult:
    x1, y1, x2, y2 = box
    persons = np.zeros(size, np.int32)
    persons[y1:y2, x1:x2] = 7
    return ParsingResult(np.zeros(size, np.uint8), persons, np.array([7]), np.array([box], np.float32), np.array([0.9], np.float32), (), PASCAL_PERSON_PART)


@pytest.mark.parametrize("box", [(40, 50, 80, 110), (0, 0, 30, 60), (140, 60, 160, 120)])
def test_the_id_is_drawn_inside_the_persons_box_and_the_image(box) -> None:
    """Below a flag (the person starts at row 50), in the top-left corner, at the right edge:
    nothing is drawn outside the person's box grown by the outline's width."""
    image = np.full((120, 160, 3), 128, np.uint8)
    drawn = (overlay(image, one_person(box)) != image).any(2)
    x1, y1, x2, y2 = box
    grown = np.zeros_like(drawn)
    grown[max(y1 - 2, 0) : y2 + 2, max(x1 - 2, 0) : x2 + 2] = True
    assert drawn.any() and not (drawn & ~grown).any()


def test_label_origin_keeps_the_text_in_the_image() -> None:
    for box in ((0, 0, 5, 5), (150, 110, 160, 120), (-20, -20, 400, 400)):
        x, y = label_origin(box, (18, 10), (120, 160))
        assert 0 <= x and x + 18 <= 160 and 0 <= y - 10 and y <= 120
