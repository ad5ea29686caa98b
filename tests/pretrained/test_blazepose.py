"""BlazePose's wrapper: keypoint scores from the network's logits, without numeric warnings."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from humanparse.pretrained.blazepose import INPUT_SIZE, LANDMARKS, VALUES, BlazePose


def test_a_keypoint_far_out_of_view_scores_zero_without_an_overflow_warning(monkeypatch) -> None:
    pose = BlazePose()
    logits = torch.zeros(1, LANDMARKS * VALUES)
    logits.view(LANDMARKS, VALUES)[:, 3] = -1000.0  # float32: exp(1000) overflows
    logits.view(LANDMARKS, VALUES)[0, 3] = 40.0
    outputs = {"ld_3d": logits, "output_poseflag": torch.ones(1, 1), "activation_segmentation": torch.zeros(1, INPUT_SIZE, INPUT_SIZE, 1)}
    monkeypatch.setattr(pose.network, "run", lambda crop: outputs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        poses = pose(np.zeros((64, 64, 3), np.uint8), np.array([[10.0, 10, 50, 60]], np.float32))
    assert poses.keypoints[0, 0, 2] == 1.0 and (poses.keypoints[0, 1:, 2] == 0).all()
