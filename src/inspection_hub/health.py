"""Liveness, readiness and who-am-I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from inspection_hub.auth.deps import Public, authorize
from inspection_hub.auth.principal import Principal

router = APIRouter(tags=["health"])


class Me(BaseModel):
    """Who the bearer token is."""

    username: str
    display_name: str
    role: str
    agency: str | None


@router.get("/healthz", dependencies=[Depends(Public())])
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", dependencies=[Depends(Public())])
async def readyz(request: Request) -> JSONResponse:
    """The database answers and its schema is at the migrations' head."""
    expected: set[str] = request.app.state.expected_heads
    try:
        async with request.app.state.engine.connect() as conn:
            rows = await conn.execute(text("SELECT version_num FROM alembic_version"))
            current = {r[0] for r in rows}
    except Exception as exc:  # any database failure means "not ready"
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable", "detail": type(exc).__name__},
            status_code=503,
        )
    if current != expected:
        return JSONResponse(
            {
                "status": "unavailable",
                "database": "ok",
                "migrations": {"current": sorted(current), "expected": sorted(expected)},
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok", "database": "ok", "migrations": sorted(current)})


@router.get("/v1/me", response_model=Me, tags=["auth"])
async def me(principal: Annotated[Principal, Depends(authorize())]) -> Me:
    """Who the bearer token belongs to."""
    return Me(
        username=principal.username,
        display_name=principal.display_name,
        role=principal.role.value,
        agency=principal.agency_code,
    )
