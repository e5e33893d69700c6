"""Proof-suite fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.proof.server import ServedApp, server_env, start_serve, stop


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    """`inspection-hub serve` on the test database for a whole module, log captured."""
    data_dir = tmp_path_factory.mktemp("served")
    env = server_env(database_url, data_dir, INSPECTION_HUB_PUBLIC_RATE_LIMIT_PER_SECOND="0")
    app = start_serve(env, data_dir / "serve.log")
    yield app
    stop(app)
