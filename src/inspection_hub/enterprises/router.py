"""Routes: /v1/enterprises (import, list, read, update)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request

from inspection_hub.auth.deps import authorize
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.config import Settings
from inspection_hub.db.deps import SessionDep
from inspection_hub.enterprises import service
from inspection_hub.enterprises.importer import parse_upload
from inspection_hub.enterprises.schemas import (
    EnterpriseRead,
    EnterpriseUpdate,
    ImportResult,
    RiskClass,
    RiskClassPeriod,
)
from inspection_hub.kit.body import read_limited
from inspection_hub.kit.etag import parse_if_match
from inspection_hub.kit.schema import Page

router = APIRouter(prefix="/v1/enterprises", tags=["enterprises"])

Admin = Annotated[Principal, Depends(authorize(Role.admin))]
Official = Annotated[Principal, Depends(authorize())]

IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"enterprises": {"type": "array", "items": {"type": "object"}}},
                    "required": ["enterprises"],
                }
            },
        },
    }
}


@router.post("/import", response_model=ImportResult, openapi_extra=IMPORT_BODY)
async def import_enterprises(request: Request, session: SessionDep, actor: Admin) -> ImportResult:
    """Import enterprises from CSV or JSON: all-or-nothing, every bad row reported (admin)."""
    settings: Settings = request.app.state.settings
    body = await read_limited(request, settings.max_upload_bytes)
    rows = parse_upload(body, request.headers.get("content-type", ""))
    created, updated = await service.import_rows(session, actor, rows, service.upload_digest(body))
    return ImportResult(created=created, updated=updated)


@router.get("", response_model=Page[EnterpriseRead])
async def list_enterprises(
    session: SessionDep,
    _: Official,
    district: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
    industry: Annotated[str | None, Query(max_length=8, description="industry code prefix")] = None,
    risk_class: RiskClass | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[EnterpriseRead]:
    """List enterprises by district, industry prefix and risk class, cursor-paginated."""
    items, next_cursor = await service.list_enterprises(
        session,
        district=district,
        industry_prefix=industry,
        risk_class=risk_class,
        cursor=cursor,
        limit=limit,
    )
    return Page[EnterpriseRead](
        items=[EnterpriseRead.model_validate(e) for e in items], next_cursor=next_cursor
    )


@router.get("/{uscc}", response_model=EnterpriseRead)
async def get_enterprise(uscc: str, session: SessionDep, _: Official) -> EnterpriseRead:
    """One enterprise."""
    return EnterpriseRead.model_validate(await service.get_enterprise(session, uscc))


@router.get("/{uscc}/risk-classes", response_model=list[RiskClassPeriod])
async def get_risk_history(uscc: str, session: SessionDep, _: Official) -> list[RiskClassPeriod]:
    """The enterprise's risk class history (caps use the class in force at the time)."""
    enterprise = await service.get_enterprise(session, uscc)
    rows = await service.risk_history(session, enterprise.uscc)
    return [RiskClassPeriod.model_validate(r) for r in rows]


@router.patch("/{uscc}", response_model=EnterpriseRead)
async def update_enterprise(
    uscc: str,
    body: EnterpriseUpdate,
    session: SessionDep,
    actor: Admin,
    if_match: Annotated[str | None, Header()] = None,
) -> EnterpriseRead:
    """Change an enterprise (admin); send If-Match with the version to avoid lost updates."""
    enterprise = await service.update_enterprise(
        session, actor, uscc, body, parse_if_match(if_match)
    )
    return EnterpriseRead.model_validate(enterprise)
