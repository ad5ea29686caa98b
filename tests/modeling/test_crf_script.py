"""ScriptableCRF, compiled by torch.jit.script, against InstanceCRF: the same mean field."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from humanparse.io.images import read_image
from humanparse.modeling.bodypix_parser import associate, instance_crf, part_probabilities
from humanparse.modeling.crf import InstanceCRF
from humanparse.modeling.crf_script import ScriptableCRF
from humanparse.pretrained.bodypix import BodyPix, upsample_to

PHOTO = Path(__file__).resolve().parents[1] / "fixtures" / "photos" / "astronaut.jpg"


def scripted(crf: InstanceCRF) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 marks TorchScript deprecated
        return torch.jit.script(ScriptableCRF(crf))


def smooth_inputs(h: int, w: int, d: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    coarse = lambda c, scale: F.interpolate(torch.randn(1, c, 6, 8, generator=g) * scale, size=(h, w), mode="bilinear")[0]  # noqa: E731
    boxes = torch.tensor([[5.0, 5, 30, 40], [20, 10, 60, 50], [-4, 0, 20, 20]])[:d].reshape(d, 4)
    return {
        "q": torch.softmax(coarse(7, 3.0), 0),
        "image": (torch.sigmoid(coarse(3, 2.0)) * 255),
        "boxes": boxes,
        "scores": torch.rand(d, generator=g),
        "masks": torch.rand(d, h, w, generator=g),
        "person_q": torch.softmax(torch.randn(d, 7, h, w, generator=g), 1)[:, 1:],
        "global_share": torch.softmax(torch.randn(d, h, w, generator=g), 0),
    }


@pytest.mark.parametrize("crf", [InstanceCRF(6, 5), instance_crf(), InstanceCRF(6, 3, global_term=False, bilateral_weight=3.0, other_person_penalty=0.4)],
                         ids=["paper-start", "default-parser", "box-term-only"])
def test_the_scripted_crf_equals_the_instance_crf(crf) -> None:
    with torch.no_grad():
        for p in crf.parameters():  # learned values away from their start
            p.add_(0.1)
    compiled = scripted(crf)
    for h, w, d, seed in ((48, 64, 2, 0), (37, 53, 3, 1), (30, 40, 1, 2), (20, 20, 0, 3)):
        x = smooth_inputs(h, w, d, seed)
        base = (x["q"], x["image"], x["boxes"], x["scores"])
        for options in ({}, {"masks": x["masks"], "global_share": x["global_share"]}, {"masks": x["masks"], "person_q": x["person_q"]}, {"iterations": 0}):
            with torch.no_grad():
                want, got = crf(*base, **options), compiled(*base, **options)
            assert got.shape == want.shape == (6 * d + 1, h, w)
            assert float((got - want).abs().max()) < 2e-5, (h, w, d, options)


def test_the_exported_crf_associates_a_real_photos_parts_as_the_default_parser_does(tmp_path) -> None:
    """The default parser's CRF call (bodypix_parser.associate) on BodyPix's Q of a real
    photo, through the scripted CRF saved and loaded: the same labels."""
    image = read_image(PHOTO)
    small = cv2.resize(image, (128, 128), interpolation=cv2.INTER_AREA)
    maps = BodyPix()(image, size=(321, 321))
    segments = upsample_to(maps.segments, (321, 321), (128, 128))[0, 0]
    parts = upsample_to(maps.parts, (321, 321), (128, 128))[0]
    q = part_probabilities(segments, parts)
    picture = torch.from_numpy(small).permute(2, 0, 1).float()
    boxes, scores = torch.tensor([[8.0, 6, 100, 127], [60, 20, 128, 127]]), torch.tensor([0.9, 0.4])
    crf = instance_crf()
    path = tmp_path / "crf.pt"
    torch.jit.save(scripted(crf), str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(path))
    with torch.no_grad():
        want, _ = associate(crf, q, picture, boxes, scores)
        got, _ = associate(loaded, q, picture, boxes, scores)
    assert float((got - want).abs().max()) < 2e-5
    labels_want, labels_got = want.argmax(0).numpy(), got.argmax(0).numpy()
    assert (labels_want == labels_got).all() and len(np.unique(labels_want)) >= 4  # background, head, torso, arms
