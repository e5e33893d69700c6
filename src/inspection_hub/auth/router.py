"""Routes: /v1/users (admin creates the people who sign in to the pages)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from inspection_hub.auth import service
from inspection_hub.auth.deps import authorize
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.auth.schemas import UserCreate, UserRead
from inspection_hub.db.deps import SessionDep

router = APIRouter(prefix="/v1/users", tags=["users"])

Admin = Annotated[Principal, Depends(authorize(Role.admin))]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UserRead)
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
