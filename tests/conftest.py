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
