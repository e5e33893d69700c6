"""The one shared outbound HTTP client of a process (webhooks, survey callbacks).

Every outbound request goes through one `httpx.AsyncClient` per process (one connection pool,
one TLS context): the API process builds it in its lifespan, `inspection-hub worker|scheduler`
in their main, and both register it here so that scheduled jobs (which only get a session)
use the same one through `shared_client()`.

httpcore asks `import sniffio` on every pool operation; when sniffio is not installed, each of
those failed imports walks the whole `sys.path` (measured: ~0.4 ms, a quarter of a delivery's
CPU time). sniffio is therefore a declared dependency of this project.

Deliveries are stateless: the client keeps no cookies. httpx's default jar stores every
receiver's `Set-Cookie` for the life of the client (a worker's: days) and sends it back on the
next request to that host, so a receiver could grow a worker's memory without bound or hand a
cookie to another subscriber on the same host; parsing them was also 7 % of a delivery's CPU.
"""

from __future__ import annotations

import ssl

import httpx

from inspection_hub.config import Settings
from inspection_hub.webhooks.netbackend import AsyncioTransport

_shared: httpx.AsyncClient | None = None


class _NoCookies(httpx.Cookies):
    """An empty cookie jar that stays empty (one for every client: nothing may be put in it)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        raise TypeError("the delivery client keeps no cookies")

    def update(self, cookies: object = None) -> None:  # type: ignore[override]
        raise TypeError("the delivery client keeps no cookies")


class DeliveryClient(httpx.AsyncClient):
    """`httpx.AsyncClient` without a cookie jar of its own (see the module's docstring)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("the delivery client keeps no cookies")


_NO_COOKIES = _NoCookies()


def make_http_client(
    settings: Settings, *, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """A client sized for the delivery concurrency: no redirects, no proxies from the env, its
    connections on asyncio streams (`netbackend`, decision D30). ``verify``: tests' own CA."""
    size = max(settings.webhook_concurrency, settings.survey_callback_concurrency, 1)
    limits = httpx.Limits(
        max_connections=size, max_keepalive_connections=size, keepalive_expiry=30.0
    )
    return DeliveryClient(
        transport=AsyncioTransport(limits=limits, verify=verify),
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        trust_env=False,
    )


def set_shared_client(client: httpx.AsyncClient | None) -> None:
    """Register (or, with None, forget) the process's shared client."""
    global _shared
    _shared = client


def shared_client(settings: Settings) -> httpx.AsyncClient:
    """The process's shared client; made (and registered) on first use if nobody did."""
    global _shared
    if _shared is None or _shared.is_closed:
        _shared = make_http_client(settings)
    return _shared
