"""Routes: /v1/agencies, their matters and inspectors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from inspection_hub.agencies import service
from inspection_hub.agencies.schemas import (
    AgencyCreate,
    AgencyRead,
    InspectorCreate,
    InspectorRead,
    MatterCreate,
    MatterRead,
)
from inspection_hub.auth.deps import authorize
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.db.deps import SessionDep

router = APIRouter(prefix="/v1/agencies", tags=["agencies"])

Admin = Annotated[Principal, Depends(authorize(Role.admin))]
AnyRole = Annotated[Principal, Depends(authorize())]
AgencyWriter = Annotated[
    Principal, Depends(authorize(Role.admin, Role.scheduler, agency_param="code"))
]
AgencyReader = Annotated[
    Principal,
    Depends(
        authorize(Role.admin, Role.supervisor, Role.scheduler, Role.approver, agency_param="code")
    ),
]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AgencyRead)
async def create_agency(body: AgencyCreate, session: SessionDep, actor: Admin) -> AgencyRead:
    """Register an enforcement agency (admin)."""
    return AgencyRead.model_validate(await service.create_agency(session, actor, body))


@router.get("", response_model=list[AgencyRead])
async def list_agencies(session: SessionDep, _: AnyRole) -> list[AgencyRead]:
    """List all agencies."""
    return [AgencyRead.model_validate(a) for a in await service.list_agencies(session)]


@router.post("/{code}/matters", status_code=status.HTTP_201_CREATED, response_model=MatterRead)
async def create_matter(
    code: str, body: MatterCreate, session: SessionDep, actor: AgencyWriter
) -> MatterRead:
    """Add a matter to the agency's published checklist (admin or the agency's scheduler)."""
    return MatterRead.model_validate(await service.create_matter(session, actor, code, body))


@router.get("/{code}/matters", response_model=list[MatterRead])
async def list_matters(code: str, session: SessionDep, _: AnyRole) -> list[MatterRead]:
    """The agency's published checklist (readable by every official)."""
    return [MatterRead.model_validate(m) for m in await service.list_matters(session, code)]


@router.post(
    "/{code}/inspectors", status_code=status.HTTP_201_CREATED, response_model=InspectorRead
)
async def create_inspector(
    code: str, body: InspectorCreate, session: SessionDep, actor: AgencyWriter
) -> InspectorRead:
    """Register a certified inspector (admin or the agency's scheduler)."""
    inspector = await service.create_inspector(session, actor, code, body)
    return service.inspector_read(inspector)


@router.get("/{code}/inspectors", response_model=list[InspectorRead])
async def list_inspectors(code: str, session: SessionDep, _: AgencyReader) -> list[InspectorRead]:
    """The agency's roster; lapsed certificates are marked (own agency, admin, supervisor)."""
    return [service.inspector_read(i) for i in await service.list_inspectors(session, code)]
