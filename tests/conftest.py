"""Fixtures shared by the tests; the scenes and models they use are in tests/scenes.py."""

from __future__ import annotations

import pytest

from tests.scenes import Scene, eager_parser, two_people


@pytest.fixture
def scene() -> Scene:
    return two_people()


@pytest.fixture(scope="session")
def eager_checkpoint(tmp_path_factory):
    from humanparse.modeling.checkpoints import save_checkpoint

    return save_checkpoint(eager_parser(), tmp_path_factory.mktemp("models") / "eager.pt")


@pytest.fixture(autouse=True)
def torch_threads_restored():
    """A test that leaves torch's thread count changed makes later float results depend on
    test order (a resumed training run then differs from an unbroken one in the last bits)."""
    import torch

    threads = torch.get_num_threads()
    yield
    assert torch.get_num_threads() == threads, "this test left torch.set_num_threads changed"
