"""The corpus's one fixture: the shared :class:`~world.World`, made once per session."""

from __future__ import annotations

import pytest

from tests.robustness.world import World, make_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("robustness"))
