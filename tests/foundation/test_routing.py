"""The app's routes added flat (main.add_routers) mean what `include_router` would have meant."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from inspection_hub import health
from inspection_hub.auth.deps import Public
from inspection_hub.config import Settings
from inspection_hub.kit.handread import add_documented_schemas
from inspection_hub.main import create_app, discover_routers

SETTINGS = Settings(env="test", token_pepper="p" * 40, session_secret="s" * 40)


def _included_app() -> FastAPI:
    """The same app built the plain way: every router through include_router."""
    app = FastAPI(title="inspection-hub", version=create_app(SETTINGS).version)
    app.include_router(health.router)
    for router in discover_routers():
        app.include_router(router)
    return app


def _paths(document: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, Any] = document["paths"]
    return paths


def test_flat_routes_document_the_same_api() -> None:
    """Every path, method, parameter, body, response and tag is the same as through
    include_router (the components too: the same models are referenced)."""
    flat = create_app(SETTINGS).openapi()
    included = _included_app().openapi()
    add_documented_schemas(included)  # as create_app's openapi() does (kit/handread.py)
    assert _paths(flat) == _paths(included)
    assert flat["components"] == included["components"]
    assert len(_paths(flat)) > 50


def test_api_routes_sit_on_the_app_and_pages_stay_included() -> None:
    app = create_app(SETTINGS)
    flat = [r for r in app.router.routes if isinstance(r, APIRoute)]
    paths = {r.path for r in flat}
    assert "/v1/check-requests/{request_id}/approve" in paths
    assert "/v1/tokens/{token_id}/revoke" in paths  # the auth router, once nested, is flat now
    nested = [r for r in app.router.routes if type(r).__name__ == "_IncludedRouter"]
    assert len(nested) == 1  # the pages: page routes and the static mount


def test_router_dependencies_stay_on_flat_routes() -> None:
    """A public router's rate-limit dependency was declared on the router, not on each route:
    it must still guard every one of its routes once they are flat."""
    app = create_app(SETTINGS)
    public = [
        r for r in app.router.routes if isinstance(r, APIRoute) and r.path.startswith("/public/")
    ]
    assert public
    for route in public:
        calls = [d.call for d in route.dependant.dependencies]
        assert any(isinstance(c, Public) for c in calls), route.path
