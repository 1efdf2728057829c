"""The aiohttp transport over a real socket: answers, and each failure as the client's error."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from batchpay.client import AntonClient, RetryPolicy, transport
from batchpay.client.credentials import ApiKey
from batchpay.errors import TransportError

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + (await reader.readexactly(length) if length else b"")


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await _read_request(reader)
    seen = b"yes" if b"idempotency-key: k-1" in request.lower() else b"no"
    body = b'{"data": {"id": "po_1", "key_seen": "' + seen + b'"}}'
    writer.write(
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Request-ID: req_srv\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    writer.close()


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.close()  # the request arrived; the answer is lost


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await asyncio.sleep(2)


async def _serve(handler: Handler) -> AsyncIterator[str]:
    writers: list[asyncio.StreamWriter] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await handler(reader, writer)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.sleep(0)


def _client(url: str, timeout: float = 5.0) -> AntonClient:
    # No transport given: the client's own network transport (aiohttp under httpx).
    return AntonClient(url, ApiKey("ak_test_batchpay_sandbox"), timeout=timeout,
                       retry=RetryPolicy.no_wait(max_attempts=1))  # fmt: skip


async def test_an_answer_arrives_with_its_headers_and_body() -> None:
    """A 201 over a real socket: body decoded, the server's request id, our headers sent."""
    async for url in _serve(_answer):
        async with _client(url) as client:
            result = await client.request("POST", "/v1/payouts", json={"a": "1.00"},
                                          idempotency_key="k-1")  # fmt: skip
        assert result.status == 201 and result.request_id == "req_srv"
        assert result.data == {"id": "po_1", "key_seen": "yes"}


async def test_a_lost_answer_is_an_unknown_outcome_not_a_refusal() -> None:
    """The server reads the POST and hangs up: TransportError, not timed out, maybe sent."""
    async for url in _serve(_hang_up):
        async with _client(url) as client:
            with pytest.raises(TransportError) as caught:
                await client.request("POST", "/v1/payouts", json={}, idempotency_key="k-1")
        assert caught.value.sent is None and not caught.value.timeout
        assert "outcome unknown" in caught.value.message


async def test_an_answer_that_never_comes_is_a_timeout() -> None:
    """No answer within the read timeout: TransportError with timeout set, outcome unknown."""
    async for url in _serve(_never_answer):
        async with _client(url, timeout=0.3) as client:
            with pytest.raises(TransportError) as caught:
                await client.request("POST", "/v1/payouts", json={}, idempotency_key="k-1")
        assert caught.value.timeout and caught.value.sent is None


async def test_a_refused_connection_was_never_sent() -> None:
    """Nothing listens on the port: TransportError saying the request never left."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with _client(f"http://127.0.0.1:{port}") as client:
        with pytest.raises(TransportError) as caught:
            await client.request("POST", "/v1/payouts", json={}, idempotency_key="k-1")
    assert caught.value.sent is False


def _self_signed(tmp: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 with a certificate no CA bundle holds, and its PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = tmp / "cert.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = tmp / "key.pem"
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pem, key_pem)
    return server, pem


@contextlib.asynccontextmanager
async def _serve_tls(context: ssl.SSLContext) -> AsyncIterator[str]:
    server = await asyncio.start_server(_answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        server.close()


async def test_https_verifies_the_server_against_certifis_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A certificate no CA in the bundle signed is refused before anything is sent; the same
    server, once its certificate is trusted by the context https requests use, answers."""
    server_context, pem = _self_signed(tmp_path)
    async with _serve_tls(server_context) as url:
        async with _client(url) as client:
            with pytest.raises(TransportError) as caught:
                await client.request("POST", "/v1/payouts", json={}, idempotency_key="k-1")
        assert caught.value.sent is False
        assert "certificate" in caught.value.message.lower()

        trusting = ssl.create_default_context(cafile=str(pem))
        monkeypatch.setattr(transport, "_tls_context", lambda: trusting)
        async with _client(url) as client:
            answer = await client.request("POST", "/v1/payouts", json={}, idempotency_key="k-1")
        assert answer.data["key_seen"] == "yes"


def test_the_https_context_verifies_with_certifis_bundle() -> None:
    context = transport._tls_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 50  # certifi's roots, loaded


async def test_plain_http_never_loads_a_ca_bundle() -> None:
    transport._tls_context.cache_clear()
    async for url in _serve(_answer):
        async with _client(url) as client:
            await client.request("POST", "/v1/payouts", json={}, idempotency_key="k-1")
    assert transport._tls_context.cache_info().currsize == 0
