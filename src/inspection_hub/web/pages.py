"""The page machinery: who is signed in, locale, CSRF, rendering, and HTML error pages.

Page routes use `PageRoute` (errors become HTML pages or a redirect to sign in) and take a
`Page` from `page()` / `signed_in(*roles)`. Signed-in routes set `request.state.principal`, so
the API's `Authorize` rule and the services' `Principal.ensure_agency` apply unchanged.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from inspection_hub.auth.deps import Authorize, Public
from inspection_hub.auth.principal import Principal, Role
from inspection_hub.config import Settings
from inspection_hub.db.deps import SessionDep
from inspection_hub.errors import AppError, Forbidden
from inspection_hub.web.i18n import HTML_LANG, environment, pick_locale
from inspection_hub.web.sessions import resolve_session

SESSION_COOKIE = "ih_session"
LANG_COOKIE = "ih_lang"
CSRF_COOKIE = "ih_csrf"
CSRF_FIELD = "csrf_token"

# page sets present in this build (a domain's pages register here when their module is loaded)
AVAILABLE_PAGES: set[str] = set()


class LoginRequired(Exception):
    """Raised by `signed_in` when no live session exists; PageRoute redirects to /login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def cookie_secure(settings: Settings) -> bool:
    """Cookies carry `Secure` outside development and test (served over plain HTTP there)."""
    return settings.env not in ("development", "test")


def safe_next(value: str | None) -> str:
    """A same-site path to return to after sign-in (never another host)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


@dataclass
class Page:
    """Everything a page route needs: the request, the transaction, locale, person, CSRF."""

    request: Request
    session: AsyncSession
    settings: Settings
    locale: str
    principal: Principal | None = None
    session_csrf: str | None = None  # copied out of the row: pages may roll back and re-render
    session_token: str | None = None
    anon_csrf: str = ""
    cookies: dict[str, tuple[str, int | None]] = field(default_factory=dict)

    @property
    def user(self) -> Principal:
        """The signed-in person (only on `signed_in` routes)."""
        assert self.principal is not None
        return self.principal

    @property
    def csrf_token(self) -> str:
        """The token forms must echo: the session's, or the anonymous double-submit cookie's."""
        if self.session_csrf is not None:
            return self.session_csrf
        if not self.anon_csrf:
            self.anon_csrf = secrets.token_urlsafe(32)
            self.cookies[CSRF_COOKIE] = (self.anon_csrf, None)
        return self.anon_csrf

    async def form(self) -> dict[str, Any]:
        """The posted form after the CSRF check (403 when the token or origin is wrong)."""
        origin = self.request.headers.get("origin")
        if origin and origin != "null":
            host = self.request.headers.get("host", "")
            if urlsplit(origin).netloc != host:
                raise Forbidden("The form was posted from another site.", reason="csrf")
        data = await self.request.form()
        sent = data.get(CSRF_FIELD)
        expected = (
            self.session_csrf
            if self.session_csrf is not None
            else self.request.cookies.get(CSRF_COOKIE, "")
        )
        if (
            not isinstance(sent, str)
            or not expected
            or not hmac.compare_digest(sent.encode(), expected.encode())
        ):
            raise Forbidden("The form's security token is missing or wrong.", reason="csrf")
        return {k: v for k, v in data.multi_items() if k != CSRF_FIELD}

    def lang_url(self, lang: str) -> str:
        """This page's address in another language."""
        return str(self.request.url.include_query_params(lang=lang).path) + (
            "?" + self.request.url.include_query_params(lang=lang).query
        )

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """Render a template in the page's locale, with the cookies the page decided on."""
        env = environment(self.locale)
        html = env.get_template(template).render(
            page=self,
            principal=self.principal,
            locale=self.locale,
            html_lang=HTML_LANG[self.locale],
            csrf_token=self.csrf_token,
            Role=Role,
            has_page=AVAILABLE_PAGES.__contains__,
            **context,
        )
        response = HTMLResponse(html, status_code=status_code)
        self.apply_cookies(response)
        return response

    def redirect(self, url: str) -> RedirectResponse:
        """A 303 See Other (after a POST), with the page's cookies."""
        response = RedirectResponse(url, status_code=303)
        self.apply_cookies(response)
        return response

    def apply_cookies(self, response: Response) -> None:
        """Write the cookies decided during the request."""
        secure = cookie_secure(self.settings)
        for name, (value, max_age) in self.cookies.items():
            if value == "":
                response.delete_cookie(name, path="/", secure=secure, httponly=True)
                continue
            response.set_cookie(
                name,
                value,
                max_age=max_age,
                path="/",
                secure=secure,
                httponly=True,
                samesite="lax",
            )
        response.headers["Cache-Control"] = "no-store"


async def _build_page(request: Request, session: AsyncSession) -> Page:
    settings: Settings = request.app.state.settings
    query_lang = request.query_params.get("lang")
    locale = pick_locale(query_lang, request.cookies.get(LANG_COOKIE))
    page = Page(
        request=request,
        session=session,
        settings=settings,
        locale=locale,
        anon_csrf=request.cookies.get(CSRF_COOKIE, ""),
    )
    if query_lang and pick_locale(query_lang, None) == locale:
        page.cookies[LANG_COOKIE] = (query_lang.lower(), 365 * 24 * 3600)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        resolved = await resolve_session(session, settings, token)
        if resolved is None:
            page.cookies[SESSION_COOKIE] = ("", None)
        else:
            web_session, page.principal = resolved
            page.session_csrf = web_session.csrf_token
            page.session_token = token
            request.state.principal = page.principal
    request.state.page = page
    return page


class PublicPage(Public):
    """Dependency of public pages (enterprise links, sign-in): the Page, signed in or not.

    A `Public` rule, so the authorization matrix sees the route as deliberately open.
    """

    async def __call__(  # type: ignore[override]
        self, request: Request, session: SessionDep
    ) -> Page:
        return await _build_page(request, session)


class SignedInPage(Authorize):
    """Dependency of official pages: the session's Principal, checked by the API's `Authorize`."""

    async def __call__(  # type: ignore[override]
        self, request: Request, session: SessionDep
    ) -> Page:
        current = await _build_page(request, session)
        if current.principal is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method != "GET":
                target = "/"
            raise LoginRequired(target)
        self.check(request, current.principal)
        return current


page = PublicPage()


def signed_in(*roles: Role) -> SignedInPage:
    """Dependency: the Page of a route for signed-in officials of the given roles (all if none)."""
    return SignedInPage(roles or tuple(Role))


def error_page(request: Request, exc: AppError) -> HTMLResponse:
    """An HTML page for a refused or failed page request, in the request's locale."""
    current: Page | None = getattr(request.state, "page", None)
    if current is None:
        settings: Settings = request.app.state.settings
        locale = pick_locale(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))
        current = Page(request=request, session=None, settings=settings, locale=locale)  # type: ignore[arg-type]
    return current.render(
        "error.html",
        status_code=exc.status,
        status=exc.status,
        kind=exc.type,
        reason=exc.extra.get("reason"),
    )


class PageRoute(APIRoute):
    """A page route: sign-in redirects and application errors become HTML, not problem JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except LoginRequired as exc:
                return RedirectResponse("/login?next=" + quote(exc.next_path, safe="/"), 303)
            except AppError as exc:
                return error_page(request, exc)

        return handler
