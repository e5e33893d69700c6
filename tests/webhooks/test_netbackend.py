"""The outbound client's network layer (webhooks/netbackend.py) against real sockets on 127.0.0.1.

Each test runs a small asyncio HTTP/1.1 server whose behaviour after an answer is chosen by the
test: keep the connection, close it, or send bytes nobody asked for. The client under test is
the service's own (`make_http_client`), so these are the connections deliveries use.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpcore
import httpx
import pytest

from inspection_hub.config import Settings
from inspection_hub.webhooks.http import make_http_client
from inspection_hub.webhooks.netbackend import AsyncioBackend, AsyncioTransport

pytestmark = pytest.mark.asyncio

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


@dataclass
class Server:
    """Answers each request with `OK`, then does `after` ("keep", "close" or "junk")."""

    after: str = "keep"
    set_cookie: bool = False  # each answer sets a cookie of its own name
    connections: int = 0
    bodies: list[bytes] = field(default_factory=list)
    heads: list[bytes] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                self.heads.append(head.lower())
                self.bodies.append(await reader.readexactly(length))
                if self.set_cookie:
                    name = b"c%d" % len(self.bodies)
                    writer.write(
                        OK.replace(b"\r\n\r\n", b"\r\nset-cookie: %s=v; Path=/\r\n\r\n" % name)
                    )
                else:
                    writer.write(OK)
                await writer.drain()
                if self.after == "close":
                    break
                if self.after == "junk":  # an unsolicited answer on the idle connection
                    await asyncio.sleep(0.01)  # after the client has taken the answer
                    writer.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    listener = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = listener.sockets[0].getsockname()[1]
    yield state
    listener.close()


def _client() -> httpx.AsyncClient:
    return make_http_client(Settings(env="test"))


async def test_the_service_client_uses_the_asyncio_backend() -> None:
    async with _client() as client:
        transport = client._transport
        assert isinstance(transport, AsyncioTransport)
        pool = transport._pool
        assert isinstance(pool, httpcore.AsyncConnectionPool)
        assert isinstance(pool._network_backend, AsyncioBackend)
        assert pool._max_connections == 16  # the delivery concurrency of the default settings


async def test_keeps_a_connection_alive_between_requests(server: Server) -> None:
    async with _client() as client:
        for i in range(5):
            response = await client.post(f"http://127.0.0.1:{server.port}/", content=b"n%d" % i)
            assert (response.status_code, response.content) == (200, b"ok")
    assert server.bodies == [b"n0", b"n1", b"n2", b"n3", b"n4"]
    assert server.connections == 1


@pytest.mark.parametrize("after", ["close", "junk"])
async def test_a_connection_closed_or_spoken_on_unasked_is_not_reused(
    server: Server, after: str
) -> None:
    """The peer closes after each answer, or sends a stray 408 on the idle connection: each
    request then goes on a new connection, never reading the stray bytes as its answer."""
    server.after = after
    async with _client() as client:
        for i in range(3):
            response = await client.post(f"http://127.0.0.1:{server.port}/", content=b"c%d" % i)
            assert (response.status_code, response.content) == (200, b"ok")
            await asyncio.sleep(0.05)  # the close or the stray bytes reach the client first
    assert server.bodies == [b"c0", b"c1", b"c2"]
    assert server.connections == 3


async def test_a_large_body_is_written_whole(server: Server) -> None:
    body = bytes(range(256)) * 8192  # 2 MiB: more than the transport buffers at once
    async with _client() as client:
        response = await client.post(f"http://127.0.0.1:{server.port}/", content=body)
    assert response.status_code == 200
    assert server.bodies == [body]


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens once the probe is closed
    async with _client() as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/", content=b"{}")


async def test_a_silent_peer_is_a_read_timeout() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with _client() as client:
            async with asyncio.timeout(5):  # a read without a timeout fails here, not hangs
                with pytest.raises(httpx.ReadTimeout):
                    await client.post(f"http://127.0.0.1:{port}/", content=b"{}", timeout=0.2)
    finally:
        listener.close()


async def test_a_peer_gone_mid_answer_is_an_error_not_an_answer() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.transport.abort()

    listener = await asyncio.start_server(half, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with _client() as client:
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                await client.post(f"http://127.0.0.1:{port}/", content=b"")
    finally:
        listener.close()


async def test_a_receiver_cookies_are_neither_kept_nor_sent(server: Server) -> None:
    """Deliveries are stateless: a receiver's Set-Cookie is not stored (a hostile receiver
    setting a new cookie on every answer would otherwise grow a long-lived worker's jar) and
    never comes back on a later request, to it or to anyone on the same host."""
    server.set_cookie = True
    async with _client() as client:
        for i in range(20):
            response = await client.post(f"http://127.0.0.1:{server.port}/", content=b"k%d" % i)
            assert response.status_code == 200
            assert response.headers["set-cookie"] == f"c{i + 1}=v; Path=/"  # it was offered
        assert len(client.cookies.jar) == 0
        assert not client.cookies
        with pytest.raises(TypeError):
            client.cookies.set("planted", "x")
        with pytest.raises(TypeError):
            client.cookies = {"planted": "x"}
    assert len(server.heads) == 20
    assert not [head for head in server.heads if b"\r\ncookie:" in head]
