"""Agency, matter and inspector operations."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.agencies.models import Agency, Inspector, Matter
from inspection_hub.agencies.schemas import (
    AgencyCreate,
    InspectorCreate,
    InspectorRead,
    MatterCreate,
)
from inspection_hub.audit.service import record
from inspection_hub.auth.principal import Principal
from inspection_hub.errors import Conflict, NotFound
from inspection_hub.events import types as ev
from inspection_hub.events.outbox import emit
from inspection_hub.kit.timeutil import local_today


async def get_agency(session: AsyncSession, code: str) -> Agency:
    """The agency, or 404."""
    agency = await session.get(Agency, code)
    if agency is None:
        raise NotFound(f"Agency {code} does not exist.")
    return agency


async def create_agency(session: AsyncSession, actor: Principal, data: AgencyCreate) -> Agency:
    """Register an agency; a duplicate code is a 409."""
    if await session.get(Agency, data.code) is not None:
        raise Conflict(f"Agency {data.code} already exists.")
    agency = Agency(code=data.code, name=data.name)
    session.add(agency)
    await session.flush()
    await record(session, actor, "agency.create", "agency", agency.code, after=data.model_dump())
    await emit(session, ev.AGENCY_CREATED, agency.code, data.model_dump(), agency_codes=[data.code])
    return agency


async def list_agencies(session: AsyncSession) -> list[Agency]:
    """All agencies by code."""
    return list((await session.execute(select(Agency).order_by(Agency.code))).scalars())


async def create_matter(
    session: AsyncSession, actor: Principal, agency_code: str, data: MatterCreate
) -> Matter:
    """Add a matter to the agency's checklist."""
    await get_agency(session, agency_code)
    if await session.get(Matter, data.code) is not None:
        raise Conflict(f"Matter {data.code} already exists.")
    matter = Matter(agency_code=agency_code, **data.model_dump())
    session.add(matter)
    await session.flush()
    await record(session, actor, "matter.create", "matter", matter.code, after=data.model_dump())
    return matter


async def list_matters(session: AsyncSession, agency_code: str) -> list[Matter]:
    """The agency's checklist."""
    await get_agency(session, agency_code)
    stmt = select(Matter).where(Matter.agency_code == agency_code).order_by(Matter.code)
    return list((await session.execute(stmt)).scalars())


def inspector_read(inspector: Inspector) -> InspectorRead:
    """Present an inspector with the certificate's validity today."""
    return InspectorRead(
        id=inspector.id,
        agency_code=inspector.agency_code,
        name=inspector.name,
        certificate_no=inspector.certificate_no,
        certificate_valid_until=inspector.certificate_valid_until,
        certificate_valid=inspector.certificate_valid_until >= local_today(),
    )


async def create_inspector(
    session: AsyncSession, actor: Principal, agency_code: str, data: InspectorCreate
) -> Inspector:
    """Register a certified inspector; certificate numbers are unique across agencies."""
    await get_agency(session, agency_code)
    existing = await session.execute(
        select(Inspector.id).where(Inspector.certificate_no == data.certificate_no)
    )
    if existing.first() is not None:
        raise Conflict(f"Certificate number {data.certificate_no} is already registered.")
    inspector = Inspector(agency_code=agency_code, **data.model_dump())
    session.add(inspector)
    await session.flush()
    await record(
        session, actor, "inspector.create", "inspector", inspector.id, after=data.model_dump()
    )
    return inspector


async def list_inspectors(session: AsyncSession, agency_code: str) -> list[Inspector]:
    """The agency's roster."""
    await get_agency(session, agency_code)
    stmt = select(Inspector).where(Inspector.agency_code == agency_code).order_by(Inspector.id)
    return list((await session.execute(stmt)).scalars())
