"""SSRF guard for user-supplied URLs (webhook subscriptions, enterprise callback URLs).

A URL is checked twice: ``validate_url_syntax`` at subscription time (syntax and literal IP
addresses, no DNS) and ``check_url`` right before delivery, which resolves the host once and checks
every address. ``guarded_post`` then connects to a resolved address (pinned, so a DNS rebinding
between check and connect cannot redirect it), keeps the original Host header and TLS server name,
and never follows redirects.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import httpx

import inspection_hub.webhooks.http  # noqa: F401 - a cheap httpcore import check (see there)

__all__ = [
    "IPAddress",
    "ResolvedTarget",
    "TargetCache",
    "UnsafeURL",
    "check_url",
    "guarded_post",
    "validate_url_syntax",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH: Final = 2048
DEFAULT_RESOLVE_TIMEOUT: Final = 5.0
DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024

# Cloud instance metadata endpoints: refused even when private targets are allowed.
METADATA_ADDRESSES: Final[frozenset[IPAddress]] = frozenset(
    {
        ipaddress.IPv4Address("169.254.169.254"),  # AWS, GCP, Azure, Huawei Cloud, OpenStack
        ipaddress.IPv4Address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.IPv4Address("169.254.0.23"),  # Tencent Cloud
        ipaddress.IPv4Address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.IPv4Address("192.0.0.192"),  # Oracle Cloud
        ipaddress.IPv4Address("168.63.129.16"),  # Azure wire server
        ipaddress.IPv6Address("fd00:ec2::254"),  # AWS over IPv6
    }
)
METADATA_HOSTNAMES: Final = frozenset(
    {"metadata", "metadata.google.internal", "instance-data", "metadata.tencentyun.com"}
)
LOCAL_HOSTNAMES: Final = frozenset(
    {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
)
LOCAL_SUFFIXES: Final = (
    ".localhost",
    ".local",
    ".localdomain",
    ".internal",
    ".intranet",
    ".lan",
    ".home.arpa",
)

_PRIVATE_NETWORKS: Final = (
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("192.168.0.0/16"),
    ipaddress.IPv4Network("100.64.0.0/10"),  # carrier-grade NAT
    ipaddress.IPv6Network("fc00::/7"),  # unique local
    ipaddress.IPv6Network("fec0::/10"),  # deprecated site-local
)
_THIS_NETWORK: Final = ipaddress.IPv4Network("0.0.0.0/8")
_NAT64_NETWORKS: Final = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)
_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED: Final = ipaddress.IPv6Network("::ffff:0:0:0/96")
_NUMERIC_HOST: Final = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)
_HOST_LABEL: Final = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class UnsafeURL(ValueError):
    """A URL refused by the SSRF guard; ``reason`` says why in plain English."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """A checked URL and the addresses its host resolved to (all of them safe)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]
    host_is_ip: bool


@dataclass(frozen=True, slots=True)
class _ParsedURL:
    url: httpx.URL
    scheme: str
    host: str
    port: int
    literal: IPAddress | None


def _parse(url: str, allow_http: bool) -> _ParsedURL:
    """Parse with the same parser the HTTP client uses, refusing anything ambiguous."""
    if not isinstance(url, str) or not url:
        raise UnsafeURL("the URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURL(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in url):
        raise UnsafeURL("the URL contains whitespace, control characters or backslashes")
    try:
        parsed = httpx.URL(url)
        raw_host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        raise UnsafeURL(f"the URL cannot be parsed: {exc}") from exc
    scheme = parsed.scheme
    if scheme == "http" and not allow_http:
        raise UnsafeURL("only https URLs are allowed")
    if scheme not in ("http", "https"):
        raise UnsafeURL(
            "only http(s) URLs are allowed" if allow_http else "only https URLs are allowed"
        )
    if parsed.userinfo or "@" in re.split(r"[/?#]", url.split("://", 1)[-1], maxsplit=1)[0]:
        raise UnsafeURL("user names and passwords in URLs are not allowed")
    host = raw_host.lower().strip("[]")
    if not host:
        raise UnsafeURL("the URL has no host")
    port = parsed.port if parsed.port is not None else _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise UnsafeURL("the URL's port is out of range")
    return _ParsedURL(parsed, scheme, host, port, _literal_ip(host))


def _literal_ip(host: str) -> IPAddress | None:
    """The address a host names literally, including legacy numeric IPv4 forms (127.1, 0x7f…)."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise UnsafeURL("the host is not a valid IPv6 address") from exc
    if _NUMERIC_HOST.fullmatch(host.rstrip(".")):
        # The system resolver accepts decimal, octal, hex and short dotted forms (inet_aton).
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address carried inside an IPv6 one (mapped, compatible, 6to4, Teredo, NAT64)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    packed = int(ip) & 0xFFFFFFFF
    if ip in _IPV4_TRANSLATED or any(ip in net for net in _NAT64_NETWORKS):
        return ipaddress.IPv4Address(packed)
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return ipaddress.IPv4Address(packed)
    return None


def _address_problem(ip: IPAddress, allow_private: bool) -> str | None:
    """Why connecting to this address is refused, or None when it is acceptable."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return f"{ip} is a scoped (link-local) address"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            problem = _address_problem(embedded, allow_private)
            if problem is not None:
                return f"{ip} embeds an IPv4 address: {problem}"
    if ip in METADATA_ADDRESSES:
        return f"{ip} is a cloud metadata address"
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return f"{ip} is an unspecified address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_loopback:
        return None if allow_private else f"{ip} is a loopback address"
    if any(ip.version == net.version and ip in net for net in _PRIVATE_NETWORKS):
        return None if allow_private else f"{ip} is a private address"
    if ip.is_reserved:
        return f"{ip} is a reserved address"
    if not ip.is_global:
        return None if allow_private else f"{ip} is not a public address"
    return None


def _check_address(ip: IPAddress, allow_private: bool) -> None:
    problem = _address_problem(ip, allow_private)
    if problem is not None:
        raise UnsafeURL(problem)


def _check_hostname(host: str, allow_private: bool) -> None:
    """Refuse names that are local or metadata endpoints by definition, before any DNS."""
    name = host.rstrip(".")
    labels = name.split(".")
    if not name or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise UnsafeURL(f"{host!r} is not a valid host name")
    if name in METADATA_HOSTNAMES:
        raise UnsafeURL(f"{host} is a cloud metadata host name")
    if allow_private:
        return
    if name in LOCAL_HOSTNAMES or name.endswith(LOCAL_SUFFIXES):
        raise UnsafeURL(f"{host} is a local host name")
    if len(labels) < 2:
        raise UnsafeURL(f"{host} is not a fully qualified domain name")


def validate_url_syntax(url: str, allow_http: bool, *, allow_private: bool = False) -> None:
    """Check a URL's syntax and literal address without DNS; raise UnsafeURL if refused."""
    parsed = _parse(url, allow_http)
    if parsed.literal is not None:
        _check_address(parsed.literal, allow_private)
    else:
        _check_hostname(parsed.host, allow_private)


async def check_url(
    url: str,
    *,
    allow_private: bool,
    allow_http: bool,
    resolve_timeout: float = DEFAULT_RESOLVE_TIMEOUT,
) -> ResolvedTarget:
    """Check a URL and resolve its host once, refusing it unless every address is safe."""
    parsed = _parse(url, allow_http)
    if parsed.literal is not None:
        _check_address(parsed.literal, allow_private)
        return ResolvedTarget(
            url, parsed.scheme, parsed.host, parsed.port, (parsed.literal,), host_is_ip=True
        )
    _check_hostname(parsed.host, allow_private)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(resolve_timeout):
            infos = await loop.getaddrinfo(
                parsed.host, parsed.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
    except TimeoutError as exc:
        raise UnsafeURL(f"resolving {parsed.host} timed out") from exc
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL(f"{parsed.host} does not resolve") from exc
    addresses: list[IPAddress] = []
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(sockaddr[0])
        if isinstance(address, ipaddress.IPv6Address) and len(sockaddr) >= 4 and sockaddr[3]:
            address = ipaddress.IPv6Address(f"{address}%{sockaddr[3]}")
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeURL(f"{parsed.host} has no IP addresses")
    for address in addresses:
        problem = _address_problem(address, allow_private)
        if problem is not None:
            raise UnsafeURL(f"{parsed.host} resolves to {problem}")
    return ResolvedTarget(
        url, parsed.scheme, parsed.host, parsed.port, tuple(addresses), host_is_ip=False
    )


_DROPPED_RESPONSE_HEADERS: Final = frozenset(
    {"content-encoding", "content-length", "transfer-encoding"}
)


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to send to a checked URL: the pinned request URLs, Host header and TLS name."""

    target: ResolvedTarget
    pinned: tuple[httpx.URL, ...]
    host_header: str
    extensions: Mapping[str, object]


def _plan(target: ResolvedTarget) -> _Plan:
    original = httpx.URL(target.url)
    extensions: dict[str, object] = {}
    if target.scheme == "https" and not target.host_is_ip:
        # TLS: send the real name as SNI and verify the certificate against it.
        extensions["sni_hostname"] = target.host.rstrip(".")
    return _Plan(
        target,
        tuple(original.copy_with(host=str(address)) for address in target.addresses),
        original.netloc.decode("ascii"),
        extensions,
    )


class TargetCache:
    """Checked URLs and their resolved addresses, kept for `ttl` seconds (deliveries' hot path).

    Only an accepted check is kept, under the URL and both permission flags, so a refused URL is
    checked again every time and a change of setting never reuses an answer. Addresses stay
    pinned: a name that is re-pointed (DNS rebinding) after the check still reaches only the
    addresses that were checked; a re-pointed name is looked up again after `ttl` seconds.
    """

    def __init__(self, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[tuple[str, bool, bool], tuple[float, _Plan]] = {}

    def get(self, key: tuple[str, bool, bool], now: float) -> _Plan | None:
        """The plan for a URL checked less than `ttl` seconds ago, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: tuple[str, bool, bool], plan: _Plan, now: float) -> None:
        """Keep a plan for `ttl` seconds (the oldest entries go first when full)."""
        if len(self._entries) >= self.max_entries:
            for stale in list(self._entries)[: max(1, self.max_entries // 10)]:
                del self._entries[stale]
        self._entries[key] = (now + self.ttl, plan)

    def clear(self) -> None:
        """Forget every checked URL."""
        self._entries.clear()


async def _checked_plan(
    url: str,
    *,
    allow_private: bool,
    allow_http: bool,
    resolve_timeout: float,
    cache: TargetCache | None,
) -> _Plan:
    if cache is None:
        target = await check_url(
            url, allow_private=allow_private, allow_http=allow_http, resolve_timeout=resolve_timeout
        )
        return _plan(target)
    key = (url, allow_private, allow_http)
    now = time.monotonic()
    plan = cache.get(key, now)
    if plan is None:
        target = await check_url(
            url, allow_private=allow_private, allow_http=allow_http, resolve_timeout=resolve_timeout
        )
        plan = _plan(target)
        cache.put(key, plan, now)
    return plan


async def _bounded(response: httpx.Response, request: httpx.Request, limit: int) -> httpx.Response:
    """Read at most limit (decoded) bytes of a streamed response and return it as a read one."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    length = response.headers.get("content-length", "")
    if encoding == "identity" and length.isdigit() and int(length) <= limit:
        # The framing caps what can be read at the declared length (h11 refuses more), and an
        # unencoded body decodes to the same bytes: read it in place, no copy of the response.
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body.extend(chunk)
            if len(body) >= limit:
                break
    finally:
        await response.aclose()
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in _DROPPED_RESPONSE_HEADERS
    ]
    bounded = httpx.Response(
        response.status_code,
        headers=headers,
        content=bytes(body[:limit]),
        request=request,
        extensions={
            key: value
            for key, value in response.extensions.items()
            if key in ("http_version", "reason_phrase")
        },
    )
    bounded.elapsed = response.elapsed
    return bounded


async def guarded_post(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout: float,  # noqa: ASYNC109 - also the per-phase httpx timeout, not only a deadline
    allow_private: bool,
    allow_http: bool,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    cache: TargetCache | None = None,
) -> httpx.Response:
    """POST to a checked URL over a connection pinned to its resolved address; no redirects.

    With a `cache`, a URL accepted less than `cache.ttl` seconds ago is not checked again.
    """
    try:
        async with asyncio.timeout(timeout):
            plan = await _checked_plan(
                url,
                allow_private=allow_private,
                allow_http=allow_http,
                resolve_timeout=timeout,
                cache=cache,
            )
            request_headers = httpx.Headers(headers)
            request_headers["Host"] = plan.host_header
            request_headers.setdefault("Accept", "*/*")
            # Only an excerpt of the answer is kept: ask for it uncompressed.
            request_headers["Accept-Encoding"] = "identity"
            timeouts = httpx.Timeout(timeout).as_dict()
            last_error: httpx.ConnectError | None = None
            for pinned in plan.pinned:
                # Built directly (not `client.build_request`): no client defaults or cookies
                # are merged into a delivery; it is still sent through the shared client's pool.
                request = httpx.Request(
                    "POST",
                    pinned,
                    content=content,
                    headers=request_headers,
                    extensions={**plan.extensions, "timeout": timeouts},
                )
                try:
                    response = await client.send(request, follow_redirects=False, stream=True)
                except httpx.ConnectError as exc:
                    last_error = exc  # try the next resolved address, never a new lookup
                    continue
                return await _bounded(response, request, max_response_bytes)
    except TimeoutError as exc:
        raise httpx.TimeoutException(f"delivery to {url} timed out after {timeout} s") from exc
    assert last_error is not None
    raise last_error
