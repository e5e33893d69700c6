"""httpcore's network layer on asyncio streams, for the shared outbound client (decision D30).

httpx sends through httpcore, whose default network backend on asyncio is anyio's: every read,
write and idle-connection check goes through anyio's cancel scopes and typed attributes. Against
a local receiver that was about a third of a delivery's CPU (docs/performance.md, "Deliveries").
httpcore documents the network backend as its extension point (`AsyncConnectionPool(
network_backend=...)`); this one is the same contract on `asyncio.open_connection`'s parts.

What httpcore asks of a stream, and how it is answered here:

- ``read`` / ``write`` with a timeout: ``asyncio.timeout``; timeouts and socket errors become
  httpcore's ``ReadTimeout`` / ``ReadError`` / ``WriteTimeout`` / ``WriteError`` (httpx maps them
  to its own exceptions, as for the default backend);
- ``start_tls``: ``StreamWriter.start_tls`` (the SNI name is the one httpcore passes, so the
  SSRF guard's pinned address is still verified against the original host name);
- ``get_extra_info("is_readable")``, asked before an idle kept-alive connection is reused: true
  when the peer closed it or sent bytes nobody asked for (a ``408`` before closing). asyncio
  reads eagerly, so this is answered from the stream's buffer, not from the socket;
- the other extras (``ssl_object``, ``client_addr``, ``server_addr``, ``socket``) from the
  transport.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any, SupportsIndex, cast

import httpcore
import httpx

__all__ = ["AsyncioBackend", "AsyncioTransport"]

_READ_LIMIT = 2**16
_EXTRAS = {
    "ssl_object": "ssl_object",
    "client_addr": "sockname",
    "server_addr": "peername",
    "socket": "socket",
}


class _Reader(asyncio.StreamReader):
    """A stream reader that knows how many received bytes are still unread."""

    unread = 0

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        self.unread += len(cast(bytes, data))  # what the protocol feeds: the bytes received
        super().feed_data(data)

    async def read(self, n: int = -1) -> bytes:
        data = await super().read(n)
        self.unread -= len(data)
        return data


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: _Reader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc) or "read timed out") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc) or "write timed out") from exc
        except (OSError, RuntimeError) as exc:  # RuntimeError: the transport is closing
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._writer.close()
            raise httpcore.ConnectTimeout(str(exc) or "TLS handshake timed out") from exc
        except OSError as exc:  # ssl.SSLError (a certificate refused) is an OSError
            self._writer.close()
            raise httpcore.ConnectError(str(exc)) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            reader = self._reader
            return reader.unread > 0 or reader.at_eof() or reader.exception() is not None
        name = _EXTRAS.get(info)
        return None if name is None else self._writer.get_extra_info(name)


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """TCP connections as asyncio streams (no Unix sockets: deliveries go to URLs)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        reader = _Reader(limit=_READ_LIMIT, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                transport, _ = await loop.create_connection(
                    lambda: protocol, host, port, local_addr=local
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc) or "connect timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return _Stream(reader, asyncio.StreamWriter(transport, protocol, reader, loop))

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("Unix sockets are not a delivery target")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class AsyncioTransport(httpx.AsyncHTTPTransport):
    """httpx's HTTP transport with its connection pool on `AsyncioBackend` (HTTP/1.1 only)."""

    def __init__(self, *, limits: httpx.Limits, verify: ssl.SSLContext | bool = True) -> None:
        context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(limits=limits, verify=context, trust_env=False)
        # The pool httpx builds, with the backend the only difference: same TLS context, same
        # limits (httpx keeps the pool in `_pool`; tests/webhooks/test_netbackend.py pins that).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=AsyncioBackend(),
        )
