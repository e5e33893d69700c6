"""Routes: /v1/users (admin creates the people who sign in) and /v1/tokens (list and revoke)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status

from inspection_hub.auth import service
from inspection_hub.auth.cache import TokenCache
from inspection_hub.auth.deps import authorize
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.auth.schemas import TokenRead, UserCreate, UserRead
from inspection_hub.db.deps import SessionDep
from inspection_hub.db.session import after_commit
from inspection_hub.kit.schema import Page

# One router with full paths (no nested routers): main.add_routers adds it to the app flat.
router = APIRouter()

Admin = Annotated[Principal, Depends(authorize(Role.admin))]
# Every role manages its own tokens; the service lets only an admin reach other users' tokens.
Anyone = Annotated[Principal, Depends(authorize())]


@router.post(
    "/v1/users", tags=["users"], status_code=status.HTTP_201_CREATED, response_model=UserRead
)
async def create_user(body: UserCreate, session: SessionDep, actor: Admin) -> UserRead:
    """Create a person with a role, agency and first password (admin)."""
    user = await service.create_person(
        session,
        actor,
        username=body.username,
        display_name=body.display_name,
        role=body.role,
        agency_code=body.agency,
        password=body.password,
    )
    return UserRead(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=Role(user.role),
        agency=user.agency_code,
    )


def _token_read(entry: service.TokenEntry, viewer: Principal) -> TokenRead:
    return TokenRead(
        id=entry.token.id,
        user=entry.username,
        created_at=entry.token.created_at,
        revoked_at=entry.token.revoked_at,
        current=entry.token.id == viewer.token_id,
    )


@router.get("/v1/tokens", tags=["tokens"], response_model=Page[TokenRead])
async def list_tokens(
    session: SessionDep,
    viewer: Anyone,
    user: Annotated[str | None, Query(max_length=100, description="Username (admin)")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[TokenRead]:
    """Bearer tokens, newest first: an admin sees everyone's, anyone else only their own."""
    entries, next_cursor = await service.list_tokens(
        session, viewer, username=user, cursor=cursor, limit=limit
    )
    return Page[TokenRead](items=[_token_read(e, viewer) for e in entries], next_cursor=next_cursor)


@router.post(
    "/v1/tokens/{token_id}/revoke",
    tags=["tokens"],
    response_model=TokenRead,
    responses={403: {"description": "Another user's token (only an admin may revoke it)."}},
)
async def revoke_token(
    token_id: int, request: Request, session: SessionDep, actor: Anyone
) -> TokenRead:
    """Revoke a token at once (admin: any; others: their own); revoking it again changes nothing."""
    entry = await service.revoke_token(session, actor, token_id)
    # This process stops accepting the token as soon as the revocation commits; other processes
    # when their cached entry expires (token_cache_seconds).
    cache: TokenCache = request.app.state.token_cache
    token_hash = entry.token.token_hash
    after_commit(session, lambda: cache.evict(token_hash))
    return _token_read(entry, actor)
