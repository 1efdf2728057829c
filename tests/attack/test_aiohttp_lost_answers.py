"""The aiohttp transport, answers lost after the server read the request: never "never sent".

Real loopback sockets with a server that reads the whole request (as a provider that
committed it would) and then loses its answer in each way a network can. Only a request
that provably never left may surface as ``ConnectError``/``ConnectTimeout``/``PoolTimeout``
(the client's ``sent=False``, which lets a write be repeated without its key).
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import struct
from collections.abc import Awaitable, Callable

import httpx
import pytest

from batchpay.client import AntonClient
from batchpay.client.credentials import ApiKey
from batchpay.client.transport import AiohttpTransport
from batchpay.errors import TransportError
from batchpay.retry import RetryPolicy

pytestmark = pytest.mark.anyio
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
Fate = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":", 1)[1]))


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


async def _silent_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await _close(writer)


async def _half_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 201 Created\r\nContent-Ty")
    await writer.drain()
    await _close(writer)


async def _short_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b'HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{"id": "pay_')
    await writer.drain()
    await _close(writer)


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _withheld(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await reader.read()  # no answer, until the client gives up and hangs up
    await _close(writer)


async def _second_on_a_kept_connection_lost(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await _read_request(reader)
    writer.write(OK)  # the first answer, on a connection kept alive
    await writer.drain()
    await _read_request(reader)
    await _close(writer)


@pytest.mark.parametrize(
    "fate", [_silent_close, _half_headers, _short_body, _reset, _withheld], ids=lambda f: f.__name__
)
async def test_a_lost_answer_is_outcome_unknown(fate: Fate) -> None:
    server = await asyncio.start_server(fate, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    timeout = httpx.Timeout(1.0, connect=1.0)
    try:
        async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=timeout) as client:
            with pytest.raises(httpx.TransportError) as lost:
                await client.post(f"http://127.0.0.1:{port}/v1/payouts", content=b'{"a": 1}')
        assert not isinstance(lost.value, NEVER_SENT), type(lost.value)
    finally:
        server.close()
        await server.wait_closed()


def _client(port: int) -> AntonClient:
    """The API client as a run makes it over the network: an API key, so each request goes
    straight to aiohttp past httpx's models (``AiohttpTransport.send``)."""
    return AntonClient(
        f"http://127.0.0.1:{port}",
        ApiKey("ak_test_LOSTANSWERS0123456789"),
        timeout=1.0,
        retry=RetryPolicy.no_wait(max_attempts=1),
    )


@pytest.mark.parametrize(
    "fate",
    [
        _silent_close,
        _half_headers,
        _short_body,
        _reset,
        _withheld,
        _second_on_a_kept_connection_lost,
    ],
    ids=lambda f: f.__name__,
)
async def test_the_clients_own_hand_off_to_aiohttp_calls_a_lost_answer_outcome_unknown(
    fate: Fate,
) -> None:
    server = await asyncio.start_server(fate, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with _client(port) as client:
            if fate is _second_on_a_kept_connection_lost:
                await client.request("POST", "/v1/payouts", json={}, idempotency_key="k-0")
            with pytest.raises(TransportError) as lost:
                await client.request("POST", "/v1/payouts", json={}, idempotency_key="k-1")
        assert lost.value.sent is None, lost.value
        assert "outcome unknown" in str(lost.value)
    finally:
        server.close()
        await server.wait_closed()


async def test_the_clients_own_hand_off_calls_a_refused_connection_never_sent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with _client(port) as client:
        with pytest.raises(TransportError) as refused:
            await client.request("POST", "/v1/payouts", json={}, idempotency_key="k-1")
    assert refused.value.sent is False


async def _gzipped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    body = gzip.compress(b'{"id": "pay_1", "amount": "10.50"}')
    while True:
        try:
            await _read_request(reader)
        except asyncio.IncompleteReadError:
            break
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                     b"Content-Encoding: gzip\r\nX-Request-ID: req_gz\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
        await writer.drain()
    await _close(writer)


async def test_a_compressed_answer_is_read_decompressed_by_either_path() -> None:
    """httpx advertises the encodings it decodes; both hand-offs decode what comes back."""
    server = await asyncio.start_server(_gzipped, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with _client(port) as client:
            result = await client.request("POST", "/v1/payouts", json={}, idempotency_key="k")
        assert result.data == {"id": "pay_1", "amount": "10.50"}
        assert result.request_id == "req_gz"
        async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=2.0) as plain:
            answer = await plain.post(f"http://127.0.0.1:{port}/v1/payouts", content=b"{}")
        assert answer.json() == {"id": "pay_1", "amount": "10.50"}
    finally:
        server.close()
        await server.wait_closed()


async def test_a_lost_answer_on_a_kept_alive_connection_is_outcome_unknown() -> None:
    server = await asyncio.start_server(_second_on_a_kept_connection_lost, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1/payouts"
    try:
        async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=2.0) as client:
            assert (await client.post(url, content=b"{}")).status_code == 200
            with pytest.raises(httpx.TransportError) as lost:
                await client.post(url, content=b"{}")
        assert not isinstance(lost.value, NEVER_SENT), type(lost.value)
    finally:
        server.close()
        await server.wait_closed()


async def test_a_refused_connection_is_never_sent() -> None:
    """The control: nothing listens, so the request provably never left."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=2.0) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/v1/payouts", content=b"{}")
