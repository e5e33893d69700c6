"""The route index (kit/routeindex.py) picks the route FastAPI's full scan picks, for every path.

Two apps with the same routes, one with the index in front of its router and one without, get
the same requests: every route of the service's own table (mirrored with endpoints that name the
route) and the awkward kinds (mounts, nested routers, parameters in the first two segments, a
path convertor), each asked with every method, with and without a trailing slash, and paths no
route has. The answers must be identical: status, body, redirect target and Allow header.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from inspection_hub.config import Settings
from inspection_hub.kit import routeindex
from inspection_hub.kit.routeindex import RouteIndex, path_key, route_key
from inspection_hub.main import create_app

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _service_table(settings: Settings) -> list[tuple[str, set[str]]]:
    """The service's flat routes: path and methods."""
    app = create_app(settings)
    return [
        (r.path, set(r.methods or ()))
        for r in app.router.routes
        if isinstance(r, (APIRoute, Route)) and r.methods
    ]


def _named(name: str) -> Any:
    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"route": name, "params": request.path_params})

    return endpoint


def _mirror(table: list[tuple[str, set[str]]]) -> FastAPI:
    """An app with the table's routes and the awkward kinds, in a fixed order."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    for i, (path, methods) in enumerate(table):
        app.add_api_route(path, _named(f"t{i}"), methods=sorted(methods), name=f"t{i}")

    async def static(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"static {request.url.path}")

    pages = APIRouter()
    pages.add_api_route("/", _named("home"), methods=["GET"], name="home")
    inner = APIRouter(prefix="/approvals")
    inner.add_api_route("/{rid}", _named("page"), methods=["GET", "POST"], name="page")
    pages.include_router(inner)
    pages.routes.append(Mount("/static", routes=[Route("/{name:path}", static)]))
    app.include_router(pages)

    async def link(request: Request) -> JSONResponse:  # url_for across buckets
        return JSONResponse({"url": str(request.url_for("far", rid="9"))})

    app.add_api_route("/links/here", link, methods=["GET"])
    app.add_api_route("/v1/far/{rid}", _named("far"), methods=["GET"], name="far")
    app.add_api_route("/{tenant}/settings", _named("tenant"), methods=["GET"])
    app.add_api_route("/a/{b}", _named("a-b"), methods=["PUT"])
    app.add_api_route("/files/{rest:path}", _named("files"), methods=["GET"])
    app.add_api_route("/v1/x{y}", _named("mid-segment"), methods=["GET"])
    app.add_api_route("/v1/me", _named("shadow"), methods=["GET"])  # after the table's own
    return app


def _probe_paths(table: list[tuple[str, set[str]]]) -> list[str]:
    paths = {re.sub(r"\{[^}]+\}", "7", p) for p, _ in table}
    paths |= {
        "/", "//", "/v1", "/v1/", "/nope", "/v1/nope/x", "/static/app.css", "/static/",
        "/approvals/3", "/approvals/3/", "/files/a/b/c", "/files/", "/acme/settings",
        "/acme/settings/", "/a/q", "/a/q/", "/v1/xabc", "/v1/x", "/links/here", "/V1/me",
    }  # fmt: skip
    return sorted(paths | {p + "/" for p in paths} | {p.rstrip("/") or "/" for p in paths})


async def _answers(app: FastAPI, probes: list[tuple[str, str]]) -> list[tuple[Any, ...]]:
    transport = httpx.ASGITransport(app=app)
    out = []
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for method, path in probes:
            r = await client.request(method, path)
            out.append(
                (method, path, r.status_code, r.text, r.headers.get("location"),
                 r.headers.get("allow"))
            )  # fmt: skip
    return out


async def test_the_index_answers_as_the_full_scan_does(settings: Settings) -> None:
    table = _service_table(settings)
    assert len(table) > 70  # the whole service table, not a sample
    plain, indexed = _mirror(table), _mirror(table)
    index = routeindex.install(indexed.router)
    assert isinstance(index, RouteIndex)
    probes = [(m, p) for p in _probe_paths(table) for m in METHODS]

    want, got = await _answers(plain, probes), await _answers(indexed, probes)

    assert got == want
    statuses = {a[2] for a in want}
    assert {200, 404, 405, 307} <= statuses  # every kind of outcome was compared
    by_probe = {(a[0], a[1]): a for a in got}
    assert '"route":"t' in by_probe[("GET", "/v1/me")][3]  # the first of two equal paths
    assert by_probe[("GET", "/links/here")][3] == '{"url":"http://t/v1/far/9"}'
    assert by_probe[("GET", "/static/app.css")][3] == "static /static/app.css"


async def test_routes_added_later_are_found() -> None:
    app = _mirror([("/v1/things", {"GET"})])
    routeindex.install(app.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.get("/v1/things/new")).status_code == 404
        app.add_api_route("/v1/things/new", _named("new"), methods=["GET"])
        r = await c.get("/v1/things/new")
    assert r.json()["route"] == "new"


def test_keys() -> None:
    assert path_key("/v1/check-requests/12/approve") == ("v1", "check-requests")
    assert path_key("/v1/me/") == path_key("/v1/me") == ("v1", "me")
    assert path_key("/") == path_key("//") == ()
    approve = APIRoute("/v1/check-requests/{request_id}/approve", _named("x"))
    assert route_key(approve) == ("v1", "check-requests")
    assert route_key(APIRoute("/metrics", _named("x"))) == ("metrics",)
    assert route_key(APIRoute("/a/{b}", _named("x"))) is None  # could be any second segment
    assert route_key(APIRoute("/v1/x{y}", _named("x"))) is None
    assert route_key(Mount("/static", routes=[])) is None


def test_the_service_installs_it(settings: Settings) -> None:
    app = create_app(settings)
    assert isinstance(app.router.middleware_stack, RouteIndex)
    keyed = [route_key(r) for r in app.router.routes]
    # every API route is bucketed; only the pages' included router is tried for every path
    assert sum(k is None for k in keyed) == 1
