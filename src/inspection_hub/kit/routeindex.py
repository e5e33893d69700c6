"""Route lookup by the path's first two segments, in front of FastAPI's linear scan.

FastAPI (as Starlette) finds a request's route by trying every route in order: a regular
expression, a scope dictionary and a few attribute lookups per route, so a request for the 22nd of
80 routes pays 22 tries (about a tenth of a short read's instructions) and a survey answer, near
the end of the list, pays 74. `RouteIndex` sits where the router's own `app` sat
(`router.middleware_stack`) and hands each request to a copy of the router that holds only the
routes that could match its path, in their original order; FastAPI's own `app` then matches,
selects and runs the route exactly as it would have.

Which routes could match: a route whose path is all literal, or literal up to and including its
second segment (`/v1/check-requests/{request_id}/approve`), can only match a path with the same
first two segments. Everything else (a parameter within the first two segments, mounts, included
routers, websocket routes) could match anything and stays in every copy. Trailing slashes are
ignored in the key, so a path and its slash-toggled twin (what `redirect_slashes` tries) share
their candidates; a path whose key no route has gets the copy with only the always-candidates.
The first full match, the first partial match (405), the redirect and the 404 are therefore the
ones the full list gives. The index is rebuilt when the router's route list changes length.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

Key = tuple[str, ...]


def path_key(path: str) -> Key:
    """The first two segments of a path, trailing slashes ignored."""
    return tuple(path.rstrip("/").split("/")[1:3])


def route_key(route: Any) -> Key | None:
    """The key every path this route can match has, or None when it could match any path."""
    if type(route) not in (APIRoute, Route):
        return None
    path: str = route.path
    literal = path.split("{", 1)[0]
    if literal == path or literal.count("/") >= 3:
        return path_key(literal)
    return None


class RouteIndex:
    """ASGI callable replacing `router.middleware_stack`; see the module docstring."""

    def __init__(self, router: APIRouter) -> None:
        self.router = router
        self.dispatch = router.middleware_stack
        self._size = -1
        self._by_key: dict[Key, APIRouter] = {}
        self._rest: APIRouter = router

    def _build(self) -> None:
        keyed = [(route_key(r), r) for r in self.router.routes]
        keys = {k for k, _ in keyed if k is not None}
        self._by_key = {
            key: self._copy([r for k, r in keyed if k is None or k == key]) for key in keys
        }
        self._rest = self._copy([r for k, r in keyed if k is None])
        self._size = len(self.router.routes)

    def _copy(self, routes: list[Any]) -> APIRouter:
        narrowed = copy.copy(self.router)
        narrowed.routes = routes
        return narrowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.dispatch(scope, receive, send)
            return
        if len(self.router.routes) != self._size:
            self._build()
        narrowed = self._by_key.get(path_key(get_route_path(scope)), self._rest)
        # url_for and friends must search the whole table, not the copy
        scope.setdefault("router", self.router)
        await narrowed.app(scope, receive, send)


def install(router: APIRouter) -> RouteIndex | None:
    """Put a `RouteIndex` in front of `router` when nothing else wraps its dispatch."""
    stack = router.middleware_stack
    if getattr(stack, "__func__", None) is not type(router).app:
        return None  # router-level middleware: leave the chain alone
    index = RouteIndex(router)
    router.middleware_stack = index
    return index
