"""SSRF guard: URL refusals, DNS checks, and delivery to a real local receiver."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from inspection_hub.config import Settings
from inspection_hub.webhooks.http import make_http_client
from inspection_hub.webhooks.ssrf import UnsafeURL, check_url, guarded_post, validate_url_syntax

FAKE_HOST = "hooks.example.test"

# -- syntax and literal addresses ---------------------------------------------------------------

REFUSED_ALWAYS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.2/v2/credentials",
    "http://100.100.100.200/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2001::5601:5601]/",  # Teredo, client 169.254.169.254
    "http://169.254.1.1/",
    "http://[fe80::1]/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://metadata.google.internal/",
    "http://user:secret@example.com/",
    "http://example.com@127.0.0.1/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "http:///nohost",
    "http://exa mple.com/",
    "http://example.com\\@127.0.0.1/",
    "http://example.com:80@127.0.0.1/",
    "http://0177.0.0.1/",
    "",
]

REFUSED_UNLESS_PRIVATE = [
    "http://127.0.0.1/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://[::1]/",
    "http://[fd12:3456::1]/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://127.1/",
    "http://localhost/",
    "http://api.localhost/",
    "http://printer.local/",
    "http://intranet/",
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
]

ALLOWED = [
    "https://example.com/hooks/inspection",
    "https://hooks.example.com:8443/a?b=c",
    "https://93.184.215.14/",
    "https://[2606:4700:4700::1111]/",
    "https://例子.中国/回调",
    "https://example.com?next=a@b.example",
    "https://example.com/path@segment",
]


@pytest.mark.parametrize("url", REFUSED_ALWAYS)
@pytest.mark.parametrize("allow_private", [False, True])
def test_refused_always(url: str, allow_private: bool) -> None:
    with pytest.raises(UnsafeURL) as excinfo:
        validate_url_syntax(url, True, allow_private=allow_private)
    assert excinfo.value.reason


@pytest.mark.parametrize("url", REFUSED_UNLESS_PRIVATE)
def test_refused_unless_private(url: str) -> None:
    with pytest.raises(UnsafeURL):
        validate_url_syntax(url, True, allow_private=False)
    validate_url_syntax(url, True, allow_private=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "127.0.0.1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "127.0.0.1 is a loopback address"),
        ("http://2130706433/", "127.0.0.1 is a loopback address"),
        ("http://0x7f000001/", "127.0.0.1 is a loopback address"),
        ("http://127.1/", "127.0.0.1 is a loopback address"),
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("http://169.254.169.254/", "169.254.169.254 is a cloud metadata address"),
        ("http://localhost/", "localhost is a local host name"),
    ],
)
def test_reasons_are_clear(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match=reason):
        validate_url_syntax(url, True)


@pytest.mark.parametrize("url", ALLOWED)
def test_allowed(url: str) -> None:
    validate_url_syntax(url, False)


def test_https_only_in_production() -> None:
    with pytest.raises(UnsafeURL, match="only https"):
        validate_url_syntax("http://example.com/hook", False)
    validate_url_syntax("http://example.com/hook", True)
    validate_url_syntax("https://example.com/hook", False)


# -- resolution ---------------------------------------------------------------------------


@dataclass
class FakeDNS:
    """Resolves FAKE_HOST to fixed addresses and counts lookups; other names go to the system."""

    answers: list[str]
    lookups: int = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        loop = asyncio.get_running_loop()
        real = loop.getaddrinfo

        async def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != FAKE_HOST:
                return await real(host, port, *args, **kwargs)
            self.lookups += 1
            result: list[Any] = []
            for answer in self.answers:
                if ipaddress.ip_address(answer).version == 6:
                    result.append(
                        (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (answer, port, 0, 0))
                    )
                else:
                    result.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, port)))
            return result

        monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


@pytest.mark.asyncio
async def test_localhost_resolves_to_loopback() -> None:
    with pytest.raises(UnsafeURL):
        await check_url("http://localhost/", allow_private=False, allow_http=True)
    target = await check_url("http://localhost:8080/x", allow_private=True, allow_http=True)
    assert target.host == "localhost"
    assert target.port == 8080
    assert all(address.is_loopback for address in target.addresses)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://169.254.169.254/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://127.1/",
        "http://localhost/",
    ],
)
async def test_check_url_refuses_set(url: str) -> None:
    with pytest.raises(UnsafeURL):
        await check_url(url, allow_private=False, allow_http=True)


@pytest.mark.asyncio
async def test_metadata_refused_with_allow_private() -> None:
    for url in ("http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://100.100.100.200/"):
        with pytest.raises(UnsafeURL, match="metadata"):
            await check_url(url, allow_private=True, allow_http=True)


@pytest.mark.asyncio
async def test_https_only_check_url() -> None:
    with pytest.raises(UnsafeURL, match="only https"):
        await check_url("http://example.com/", allow_private=False, allow_http=False)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "answers",
    [
        ["169.254.169.254"],
        ["127.0.0.1"],
        ["93.184.215.14", "10.1.2.3"],  # one bad address among good ones is enough
        ["::ffff:10.0.0.1"],
        ["2606:4700:4700::1111", "::1"],
    ],
)
async def test_every_resolved_address_is_checked(
    monkeypatch: pytest.MonkeyPatch, answers: list[str]
) -> None:
    FakeDNS(answers).install(monkeypatch)
    with pytest.raises(UnsafeURL, match=f"{FAKE_HOST} resolves to"):
        await check_url(f"https://{FAKE_HOST}/", allow_private=False, allow_http=False)


@pytest.mark.asyncio
async def test_public_resolution_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    dns = FakeDNS(["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
    dns.install(monkeypatch)
    target = await check_url(f"https://{FAKE_HOST}/", allow_private=False, allow_http=False)
    assert [str(a) for a in target.addresses] == dns.answers
    assert dns.lookups == 1


@pytest.mark.asyncio
async def test_unresolvable_host_refused() -> None:
    with pytest.raises(UnsafeURL, match="does not resolve"):
        await check_url("https://no-such-host.invalid/", allow_private=False, allow_http=False)


# -- a real receiver ------------------------------------------------------------------------


@dataclass
class Receiver:
    """A tiny threaded HTTP server on 127.0.0.1 recording connections and requests."""

    status: int = 204
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    connections: int = 0
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    sni_names: list[str | None] = field(default_factory=list)
    port: int = 0


def _start(receiver: Receiver, tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.requests.append((self.command, self.path, dict(self.headers), body))
            self.send_response(receiver.status)
            for name, value in receiver.response_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(receiver.response_body)))
            self.end_headers()
            self.wfile.write(receiver.response_body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self) -> tuple[Any, Any]:
            receiver.connections += 1
            return super().get_request()

    server = Server(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    server = _start(state)
    yield state
    server.shutdown()
    server.server_close()


def _client(verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    """The service's outbound client (its pool on asyncio streams, webhooks/netbackend.py)."""
    return make_http_client(Settings(env="test"), verify=verify)


async def _post(url: str, *, allow_private: bool, allow_http: bool = True) -> httpx.Response:
    async with _client() as client:
        return await guarded_post(
            client,
            url,
            content=b'{"type":"inspection.completed"}',
            headers={"Content-Type": "application/json", "webhook-id": "msg_1"},
            timeout=5.0,
            allow_private=allow_private,
            allow_http=allow_http,
        )


@pytest.mark.asyncio
async def test_delivers_with_allow_private(receiver: Receiver) -> None:
    response = await _post(f"http://127.0.0.1:{receiver.port}/hook", allow_private=True)
    assert response.status_code == 204
    [(method, path, headers, body)] = receiver.requests
    assert (method, path) == ("POST", "/hook")
    assert body == b'{"type":"inspection.completed"}'
    assert headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert headers["webhook-id"] == "msg_1"
    assert response.elapsed.total_seconds() >= 0
    assert response.http_version == "HTTP/1.0"


@pytest.mark.asyncio
async def test_connects_to_pinned_address_with_original_host(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns = FakeDNS(["127.0.0.1"])
    dns.install(monkeypatch)
    response = await _post(f"http://{FAKE_HOST}:{receiver.port}/in?x=1", allow_private=True)
    assert response.status_code == 204
    assert dns.lookups == 1
    [(_, path, headers, _)] = receiver.requests
    assert path == "/in?x=1"
    assert headers["Host"] == f"{FAKE_HOST}:{receiver.port}"


@pytest.mark.asyncio
async def test_falls_back_to_next_resolved_address(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns = FakeDNS(["::1", "127.0.0.1"])  # the receiver listens on IPv4 only
    dns.install(monkeypatch)
    response = await _post(f"http://{FAKE_HOST}:{receiver.port}/", allow_private=True)
    assert response.status_code == 204
    assert dns.lookups == 1
    assert len(receiver.requests) == 1


@pytest.mark.asyncio
async def test_no_connection_without_allow_private(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    FakeDNS(["127.0.0.1"]).install(monkeypatch)
    for url in (
        f"http://127.0.0.1:{receiver.port}/",
        f"http://localhost:{receiver.port}/",
        f"http://2130706433:{receiver.port}/",
        f"http://[::ffff:127.0.0.1]:{receiver.port}/",
        f"http://{FAKE_HOST}:{receiver.port}/",
    ):
        with pytest.raises(UnsafeURL):
            await _post(url, allow_private=False)
    assert receiver.connections == 0
    assert receiver.requests == []


@pytest.mark.asyncio
async def test_redirect_is_not_followed(receiver: Receiver) -> None:
    receiver.status = 302
    receiver.response_headers = {"Location": "http://169.254.169.254/latest/meta-data/"}
    response = await _post(f"http://127.0.0.1:{receiver.port}/", allow_private=True)
    assert response.status_code == 302
    assert response.headers["Location"] == "http://169.254.169.254/latest/meta-data/"
    assert not response.is_success
    await asyncio.sleep(0.05)
    assert receiver.connections == 1
    assert len(receiver.requests) == 1


@pytest.mark.asyncio
async def test_response_body_is_bounded(receiver: Receiver) -> None:
    receiver.status = 200
    receiver.response_body = b"x" * (1024 * 1024)
    response = await _post(f"http://127.0.0.1:{receiver.port}/", allow_private=True)
    assert response.status_code == 200
    assert len(response.content) == 64 * 1024


def _self_signed(hostname: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.mark.asyncio
async def test_https_pins_address_and_verifies_certificate_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    cert_pem, key_pem = _self_signed(FAKE_HOST)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    state = Receiver()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    def remember_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        state.sni_names.append(name)

    server_ctx.sni_callback = remember_sni
    server = _start(state, tls=server_ctx)
    try:
        dns = FakeDNS(["127.0.0.1"])
        dns.install(monkeypatch)
        client_ctx = ssl.create_default_context(cadata=cert_pem.decode())
        async with _client(verify=client_ctx) as client:
            response = await guarded_post(
                client,
                f"https://{FAKE_HOST}:{state.port}/tls",
                content=b"{}",
                headers={},
                timeout=5.0,
                allow_private=True,
                allow_http=False,
            )
            assert response.status_code == 204
            assert state.sni_names == [FAKE_HOST]
            assert state.requests[0][2]["Host"] == f"{FAKE_HOST}:{state.port}"

            # Connecting by IP without the name would fail verification: the pin needs SNI.
            with pytest.raises(httpx.ConnectError):
                await client.post(f"https://127.0.0.1:{state.port}/", content=b"{}")
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.asyncio
async def test_silent_receiver_times_out() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        async with _client() as client:
            with pytest.raises(httpx.TimeoutException):
                await guarded_post(
                    client,
                    f"http://127.0.0.1:{port}/",
                    content=b"{}",
                    headers={},
                    timeout=0.3,
                    allow_private=True,
                    allow_http=True,
                )
    finally:
        listener.close()
