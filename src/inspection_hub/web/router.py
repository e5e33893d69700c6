"""Page routes: sign-in, the home page, static files; each domain's pages are included here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from inspection_hub.web.i18n import STATIC_DIR
from inspection_hub.web.pages import (
    SESSION_COOKIE,
    Page,
    PageRoute,
    page,
    safe_next,
    signed_in,
)
from inspection_hub.web.sessions import sign_in, sign_out

pages_router = APIRouter(route_class=PageRoute, include_in_schema=False, tags=["pages"])
pages_router.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

AnyPage = Annotated[Page, Depends(page)]
Official = Annotated[Page, Depends(signed_in())]


@pages_router.get("/login", response_class=HTMLResponse)
async def login_form(p: AnyPage, next: str | None = None) -> Response:
    """The sign-in form for officials."""
    if p.principal is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return p.render("login.html", next=safe_next(next), username="", error=None)


@pages_router.post("/login", response_class=HTMLResponse)
async def login_submit(p: AnyPage) -> Response:
    """Check the password; lock after repeated failures; start a session."""
    form = await p.form()
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    target = safe_next(str(form.get("next", "/")))
    if not username or not password:
        return p.render(
            "login.html", status_code=422, next=target, username=username, error="missing"
        )
    result = await sign_in(p.session, p.settings, username, password)
    if not result.ok:
        return p.render(
            "login.html",
            status_code=401,
            next=target,
            username=username,
            error="locked" if result.locked else "wrong",
            lockout_minutes=p.settings.login_lockout_minutes,
        )
    assert result.token is not None
    p.cookies[SESSION_COOKIE] = (result.token, None)
    return p.redirect(target)


@pages_router.post("/logout")
async def logout(p: AnyPage) -> Response:
    """End the session."""
    await p.form()
    if p.session_token:
        await sign_out(p.session, p.session_token, p.principal)
    p.cookies[SESSION_COOKIE] = ("", None)
    return p.redirect("/login")


@pages_router.get("/", response_class=HTMLResponse)
async def home(p: Official) -> Response:
    """The signed-in official's starting page: what their role can do."""
    return p.render("home.html")


# each domain's pages (a module per domain, on that domain's services)
from inspection_hub.web import (  # noqa: E402
    pages_approvals,
    pages_codes,
    pages_conflicts,
    pages_dashboard,
    pages_enterprises,
    pages_plans,
    pages_surveys,
)

for _module in (
    pages_approvals,
    pages_codes,
    pages_conflicts,
    pages_dashboard,
    pages_enterprises,
    pages_plans,
    pages_surveys,
):
    pages_router.include_router(_module.router)
