"""Authorization matrix generated from the route table: role x own agency x other agency.

Every route must carry a rule (`Authorize` or `Public` from auth/deps.py); every /v1 route an
`Authorize`. Routes added later are covered automatically.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant

from inspection_hub.auth.deps import Authorize, Public
from inspection_hub.auth.principal import AGENCY_ROLES, Role
from inspection_hub.config import Settings
from inspection_hub.kit.synth import make_uscc
from inspection_hub.main import create_app

Headers = Callable[..., Awaitable[dict[str, str]]]
DOCS = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
OWN, OTHER = "SCJG", "YJGL"
DENIED = {401, 403}
# Path ids of objects checked per owner after the role rule (a token belongs to one user): the
# generic matrix uses an id nobody owns; test_token_routes_by_owner covers the ownership rule.
OWNED_IDS = {"token_id": "999999"}


def _walk(dependant: Dependant) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _walk(dep)


def api_routes(app: Any) -> Iterator[Any]:
    """Every HTTP route with a dependency tree, through included routers (any FastAPI)."""
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        candidates = contexts() if callable(contexts) else [route]
        for candidate in candidates:
            if getattr(candidate, "dependant", None) is not None and candidate.methods:
                yield candidate


def rules_of(route: Any) -> tuple[list[Authorize], list[Public]]:
    calls = list(_walk(route.dependant))
    return (
        [c for c in calls if isinstance(c, Authorize)],
        [c for c in calls if isinstance(c, Public)],
    )


def _route_table() -> list[tuple[str, str]]:
    app = create_app(Settings(env="test", token_pepper="p" * 40, session_secret="s" * 40))
    out = []
    for route in api_routes(app):
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            out.append((method, route.path))
    return sorted(out, key=lambda mp: (mp[1], mp[0]))


ROUTES = _route_table()
V1_ROUTES = [mp for mp in ROUTES if mp[1].startswith("/v1/")]


def find(app: Any, method: str, path: str) -> Any:
    for route in api_routes(app):
        if route.path == path and method in route.methods:
            return route
    raise AssertionError(f"{method} {path} not in the app")


@dataclass
class Rule:
    roles: frozenset[Role]
    agency_params: set[str]


def rule_for(route: Any) -> Rule:
    authorizers, _ = rules_of(route)
    assert authorizers, f"{route.path} has no Authorize dependency"
    roles = frozenset.intersection(*(a.roles for a in authorizers))
    params = {a.agency_param for a in authorizers if a.agency_param}
    return Rule(roles, params)


def build_request(
    route: Any, method: str, agency: str
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """A concrete URL (path params filled), query params and request kwargs for the route."""
    rule = rule_for(route)
    path_names = {p.name for p in route.dependant.path_params}
    url = route.path
    for name in path_names | set(_placeholders(url)):
        if name in rule.agency_params or name in ("code", "agency_code", "agency"):
            value = agency
        elif "uscc" in name:
            value = make_uscc("320404", 12345)
        elif name in OWNED_IDS:
            value = OWNED_IDS[name]
        else:
            value = "1"
        url = url.replace("{" + name + "}", value).replace("{" + name + ":path}", value)
    query = {p: agency for p in rule.agency_params if p not in path_names}
    kwargs: dict[str, Any] = {}
    if method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    return url, query, kwargs


def _placeholders(path: str) -> list[str]:
    import re

    return [m.split(":")[0] for m in re.findall(r"{([^}]+)}", path)]


def test_every_route_has_a_rule() -> None:
    app = create_app(Settings(env="test", token_pepper="p" * 40, session_secret="s" * 40))
    missing = []
    for route in api_routes(app):
        if route.path in DOCS:
            continue
        authorizers, public = rules_of(route)
        if route.path.startswith("/v1/") or route.path == "/v1":
            if not authorizers:
                missing.append(f"{sorted(route.methods)} {route.path}: no Authorize")
        elif not authorizers and not public:
            missing.append(f"{sorted(route.methods)} {route.path}: neither Authorize nor Public")
    assert not missing, "routes without an authorization rule:\n" + "\n".join(missing)
    assert V1_ROUTES, "no /v1 routes found"


def test_rule_detector_catches_an_unguarded_route() -> None:
    """The matrix itself can fail: a /v1 route without Authorize is reported."""
    from fastapi import APIRouter, FastAPI

    probe = APIRouter()

    @probe.get("/v1/unguarded")
    async def unguarded() -> dict[str, str]:
        return {}

    app = FastAPI()
    app.include_router(probe)
    route = find(app, "GET", "/v1/unguarded")
    assert rules_of(route) == ([], [])


async def _person(make_headers: Headers, role: Role, agency: str) -> dict[str, str]:
    return await make_headers(role.value, agency if role in AGENCY_ROLES else None)


@pytest.mark.parametrize(("method", "path"), V1_ROUTES, ids=[f"{m} {p}" for m, p in V1_ROUTES])
async def test_matrix(
    method: str,
    path: str,
    app: Any,
    client: httpx.AsyncClient,
    make_headers: Headers,
    two_agencies: tuple[str, str],
) -> None:
    route = find(app, method, path)
    rule = rule_for(route)
    url, query, kwargs = build_request(route, method, OWN)

    async def call(headers: dict[str, str], u: str = url, q: dict[str, str] = query) -> int:
        r = await client.request(method, u, params=q, headers=headers, **kwargs)
        assert r.status_code != 500, f"{method} {u}: {r.text}"
        return r.status_code

    # anonymous and unknown token
    assert await call({}) == 401, f"{method} {path} anonymous"
    assert await call({"Authorization": "Bearer ih_unknown"}) == 401

    for role in Role:
        headers = await _person(make_headers, role, OWN)
        status = await call(headers)
        if role in rule.roles:
            assert status not in DENIED, f"{method} {path} as allowed {role}: {status}"
        else:
            assert status == 403, f"{method} {path} as {role} (not allowed): {status}"

    if rule.agency_params:
        for role in rule.roles & AGENCY_ROLES:
            foreign = await _person(make_headers, role, OTHER)
            assert await call(foreign) == 403, f"{method} {path}: {role} of {OTHER} on {OWN}"
            own = await _person(make_headers, role, OWN)
            assert await call(own) not in DENIED, f"{method} {path}: {role} of {OWN} on own"
            # and the other way round: their own agency is fine, ours is not
            other_url, other_query, _ = build_request(route, method, OTHER)
            assert await call(foreign, other_url, other_query) not in DENIED
            assert await call(own, other_url, other_query) == 403


async def test_token_routes_by_owner(
    client: httpx.AsyncClient, make_headers: Headers, two_agencies: tuple[str, str]
) -> None:
    """The object-level rule of /v1/tokens: every role manages its own tokens, only an admin
    anyone's; a refusal is a 403 problem and changes nothing; an unknown id is a 404 problem."""

    async def own_token_id(headers: dict[str, str]) -> int:
        r = await client.get("/v1/tokens", headers=headers)
        assert r.status_code == 200, r.text
        current = [t for t in r.json()["items"] if t["current"]]
        assert len(current) == 1
        return int(current[0]["id"])

    bystander = await make_headers("supervisor", name="bystander")
    bystander_token = await own_token_id(bystander)
    for role in Role:
        caller = await _person(make_headers, role, OWN)
        spare = await _person(make_headers, role, OWN)  # another person of the same role
        spare_token = await own_token_id(spare)
        listed = {t["id"] for t in (await client.get("/v1/tokens", headers=caller)).json()["items"]}
        foreign = await client.post(f"/v1/tokens/{spare_token}/revoke", headers=caller)
        if role is Role.admin:
            assert {bystander_token, spare_token} <= listed
            assert foreign.status_code == 200, foreign.text
            assert foreign.json()["revoked_at"] is not None
        else:
            assert listed == {await own_token_id(caller)}, f"{role} lists others' tokens"
            assert foreign.status_code == 403, f"{role} revoked another's token"
            assert foreign.headers["content-type"] == "application/problem+json"
            assert foreign.json()["type"].endswith("/forbidden")
            assert (await client.get("/v1/me", headers=spare)).status_code == 200
            r = await client.get("/v1/tokens", params={"user": "bystander"}, headers=caller)
            assert r.status_code == 403
        missing = await client.post("/v1/tokens/999999/revoke", headers=caller)
        assert missing.status_code == 404
        assert missing.json()["type"].endswith("/not-found")
        own = await client.post(f"/v1/tokens/{await own_token_id(caller)}/revoke", headers=caller)
        assert own.status_code == 200, f"{role} could not revoke their own token: {own.text}"
        assert (await client.get("/v1/me", headers=caller)).status_code == 401
    assert (await client.get("/v1/me", headers=bystander)).status_code == 200
