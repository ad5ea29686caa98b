"""Loading tensors from files users hand over: nothing but tensors and plain data."""

from __future__ import annotations

import pickle
import warnings

import pytest
import torch

from humanparse.errors import CheckpointError
from humanparse.io.weights import load_marked, load_plain


class _Exploit:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_pickle_holding_code_is_refused_in_one_line_without_running_it_or_warning(tmp_path, protocol) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"weights": _Exploit(marker)}, protocol=protocol))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns of pickle protocols other than 2
        with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*evil.pt: it holds Python objects") as caught:
            load_plain(path, "checkpoint")
    assert not marker.exists()
    assert "weights_only" not in str(caught.value) and "\n" not in str(caught.value)


def test_tensors_and_plain_data_load_and_damage_is_one_line(tmp_path) -> None:
    path = tmp_path / "ok.pt"
    torch.save({"w": torch.arange(3), "meta": {"name": "x", "sizes": [1, 2]}}, path)
    loaded = load_plain(path, "checkpoint")
    assert torch.equal(loaded["w"], torch.arange(3)) and loaded["meta"] == {"name": "x", "sizes": [1, 2]}
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=r"cannot read detector weights .*damaged.pt: ") as caught:
        load_plain(damaged, "detector weights")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"test model .*m.pt does not exist"),
        ([1, 2], r"m.pt: not a converted test model \(no 'test.format' format mark\)"),
        ({"format": "other", "version": 2}, r"not a converted test model \(no 'test.format' format mark\)"),
        ({"format": "test.format", "version": 1}, r"m.pt: converted test model format version 1, this humanparse reads 2"),
    ],
)
def test_a_marked_file_of_another_format_or_version_is_refused_in_one_line(tmp_path, content, message) -> None:
    path = tmp_path / "m.pt"
    if content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_marked(path, "test model", "test.format", 2, kind="converted test model")
    assert "\n" not in str(caught.value)


def test_a_marked_file_loads_with_its_mark(tmp_path) -> None:
    path = tmp_path / "m.pt"
    torch.save({"format": "test.format", "version": 2, "w": torch.ones(2)}, path)
    data = load_marked(path, "test model", "test.format", 2)
    assert data["format"] == "test.format" and data["version"] == 2 and torch.equal(data["w"], torch.ones(2))
