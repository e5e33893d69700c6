"""The inspection code page `/c/{code}`: what a scanned QR code opens at the enterprise's door."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response

from inspection_hub.errors import Conflict
from inspection_hub.inspections import service
from inspection_hub.web.pages import AVAILABLE_PAGES, Page, PageRoute, page

router = APIRouter(route_class=PageRoute, include_in_schema=False)
AVAILABLE_PAGES.add("codes")

AnyPage = Annotated[Page, Depends(page)]


def code_page_url(public_base_url: str, code: str) -> str:
    """The address a printed QR code opens (this page)."""
    return f"{public_base_url.rstrip('/')}/c/{code}"


@router.get("/c/{code}", response_class=HTMLResponse)
async def code_page(code: str, p: AnyPage) -> Response:
    """The registered visit with a prominent valid / not valid."""
    keyring = service.keyring_for(p.settings.data_dir)
    try:
        lookup = await service.code_lookup(p.session, keyring, code)
    except service.CodeRefused as exc:  # answered, not raised: the refusal event is kept
        return p.render(
            "code.html", status_code=exc.error.status, valid=False, reason=exc.reason, code=code
        )
    return p.render("code.html", valid=True, lookup=lookup, code=code, scanned=None)


@router.post("/c/{code}/scan", response_class=HTMLResponse)
async def code_scan(code: str, p: AnyPage) -> Response:
    """The enterprise confirms that the visit has started (the same service as the API's scan)."""
    await p.form()
    keyring = service.keyring_for(p.settings.data_dir)
    try:
        scanned = await service.scan_code(p.session, keyring, code)
    except service.CodeRefused as exc:
        return p.render(
            "code.html", status_code=exc.error.status, valid=False, reason=exc.reason, code=code
        )
    except Conflict:
        await p.session.rollback()
        lookup = await service.code_lookup(p.session, keyring, code)
        return p.render(
            "code.html", status_code=409, valid=True, lookup=lookup, code=code, completed=True
        )
    lookup = await service.code_lookup(p.session, keyring, code)
    return p.render("code.html", valid=True, lookup=lookup, code=code, scanned=scanned)
