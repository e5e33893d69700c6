"""The one authorization dependency: role, and agency scope from the path or query.

Every /v1 route declares `Depends(authorize(...))`; object-level checks of loaded objects go
through `Principal.ensure_agency`. tests/auth/test_matrix.py fails for a route without a rule.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import Request
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from inspection_hub.auth.cache import TokenCache
from inspection_hub.auth.principal import AGENCY_ROLES, Principal, Role
from inspection_hub.auth.service import resolve_token
from inspection_hub.auth.tokens import hash_token
from inspection_hub.config import Settings
from inspection_hub.errors import Forbidden, Unauthenticated


async def get_principal(request: Request) -> Principal:
    """Resolve the bearer token (or the page session) to a Principal, else 401."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        raise Unauthenticated()
    settings: Settings = request.app.state.settings
    cache: TokenCache | None = getattr(request.app.state, "token_cache", None)
    key = hash_token(credentials, settings.token_pepper)
    principal = cache.get(key) if cache is not None else None
    if principal is None:
        # Only a cache miss needs the database, in a short session of its own: a route that
        # reads through db.deps.autocommit_connection then opens no session at all.
        factory: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
        async with factory() as session:
            principal = await resolve_token(session, key)
        if principal is None:
            raise Unauthenticated("The bearer token is unknown or revoked.")
        if cache is not None:
            cache.put(key, principal)
    request.state.principal = principal
    return principal


class Authorize(HTTPBearer):
    """A route's authorization rule: allowed roles and where the agency scope comes from.

    One dependency (no sub-dependencies: FastAPI solving three nested ones was a tenth of a
    simple read's CPU). As an HTTPBearer it still puts the bearer scheme in the OpenAPI schema.
    """

    def __init__(self, roles: Iterable[Role], *, agency_param: str | None = None) -> None:
        super().__init__(
            scheme_name="HTTPBearer",
            description="A token from `inspection-hub token create`.",
            auto_error=False,
        )
        self.roles = frozenset(roles)
        self.agency_param = agency_param

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        return self.check(request, await get_principal(request))

    def check(self, request: Request, principal: Principal) -> Principal:
        """The rule applied to an authenticated caller: 403 unless role and agency fit."""
        if principal.role not in self.roles:
            allowed = ", ".join(sorted(r.value for r in self.roles))
            raise Forbidden(f"Role {principal.role.value} may not do this (allowed: {allowed}).")
        if self.agency_param and principal.role in AGENCY_ROLES:
            code = request.path_params.get(self.agency_param) or request.query_params.get(
                self.agency_param
            )
            if code is not None:
                principal.ensure_agency(code)
        return principal


class Public:
    """Marks a route as deliberately unauthenticated (一公开, enterprise links, health)."""

    roles: frozenset[Role] = frozenset()

    async def __call__(self) -> None:
        return None


def authorize(*roles: Role, agency_param: str | None = None) -> Authorize:
    """Build the rule; use as `principal: Annotated[Principal, Depends(authorize(...))]`."""
    return Authorize(roles or tuple(Role), agency_param=agency_param)


ALL_ROLES = tuple(Role)
