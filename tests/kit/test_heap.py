"""D32: a started app keeps what it holds for its whole life out of full garbage collections,
and gives it back when it stops."""

from __future__ import annotations

import gc
from typing import Any

from inspection_hub.config import Settings
from inspection_hub.main import create_app


def _tracked(obj: object) -> bool:
    """True if the collector's generations (not the frozen permanent one) hold ``obj``."""
    return any(o is obj for o in gc.get_objects())


async def test_a_started_app_freezes_its_startup_heap_until_it_stops(
    settings: Settings, database_url: str, sessionmaker: Any
) -> None:
    assert gc.get_freeze_count() == 0
    on = settings.model_copy(update={"gc_freeze_after_startup": True})
    app = create_app(on, database_url)
    async with app.router.lifespan_context(app):
        frozen = gc.get_freeze_count()
        # the modules, routes and models of the process: a full collection now walks only
        # what was made after startup
        assert frozen > 10_000
        assert len(gc.get_objects()) < frozen // 10
        assert not _tracked(app.router)
        assert not _tracked(app.state.settings)
    assert gc.get_freeze_count() == 0
    assert _tracked(app.router)


async def test_the_freeze_can_be_turned_off(
    settings: Settings, database_url: str, sessionmaker: Any
) -> None:
    assert settings.gc_freeze_after_startup is False  # the tests' own settings
    app = create_app(settings, database_url)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() == 0
        assert _tracked(app.router)


def test_it_is_on_by_default() -> None:
    assert Settings().gc_freeze_after_startup is True
