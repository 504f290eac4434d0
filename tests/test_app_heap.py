"""A worker takes its start-up objects out of the cyclic collector's sight while it serves
(``serving.app._freeze_heap``), and gives them back when it stops."""

from __future__ import annotations

import gc
from pathlib import Path

from fastapi.testclient import TestClient

from serving.app import create_app
from tests.shop import make_settings


def test_start_up_objects_are_frozen_while_the_app_serves(tmp_path: Path, tiny_model: Path) -> None:
    gc.unfreeze()  # whatever an earlier test left
    settings = make_settings(f"sqlite:///{tmp_path / 'heap.db'}", tmp_path, tiny_model)
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        frozen = gc.get_freeze_count()
        # the app, its routes, the service and its database engine are among them
        assert frozen > 10_000
        tracked = {id(o) for o in gc.get_objects()}  # what collections still walk
        assert id(app) not in tracked and id(app.state.service) not in tracked
        assert client.get("/readyz").status_code == 200
        assert gc.get_freeze_count() == frozen  # requests freeze nothing more
    assert gc.get_freeze_count() == 0  # stopped: collectable again
    assert id(app) in {id(o) for o in gc.get_objects()}
