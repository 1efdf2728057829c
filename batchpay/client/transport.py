"""The network transport: httpx's client interface over aiohttp's connection pool.

The client keeps httpx as its interface — requests, responses, the credential flows
(:mod:`batchpay.auth`'s DPoP proofs and OAuth tokens), the in-process sandbox through
``httpx.ASGITransport`` — and only the last step, moving bytes over sockets, is
:class:`AiohttpTransport`. Measured by ``scripts/bench_run.py`` on one sandbox at 100 ms
latency with 128 requests in flight, httpx's own pool spends most of a run's CPU choosing a
connection for each request (``_assign_requests_to_connections`` walks every connection
for every waiting request); aiohttp's pool costs a fraction of it.

aiohttp's failures become httpx's, so the client's error mapping is one: a refused or
timed-out connect is ``ConnectError``/``ConnectTimeout`` (the request never left), a
timed-out answer ``ReadTimeout``, a connection cut mid-answer ``RemoteProtocolError`` or
``ReadError`` (the outcome is unknown). The body is read whole and handed to httpx still
encoded, so httpx decodes it as it would its own.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp
import certifi
import httpx
from yarl import URL

__all__ = ["AiohttpTransport"]

# aiohttp adds these itself unless told not to; httpx has already set what it wants.
_SKIP_AUTO = frozenset({"User-Agent", "Accept-Encoding", "Accept", "Content-Type"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` that sends through one ``aiohttp`` session.

    ``limit`` caps the open connections (the client's own in-flight sizing decides how
    many requests are sent at once). The session is made on the first request, inside the
    running event loop, and closed by :meth:`aclose`.
    """

    def __init__(self, *, limit: int = 256) -> None:
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            context = ssl.create_default_context(cafile=certifi.where())
            connector = aiohttp.TCPConnector(limit=self._limit, ssl=context)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=_SKIP_AUTO,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read its whole answer; failures raised as httpx's."""
        session = self._open()
        timeouts: dict[str, Any] = request.extensions.get("timeout") or {}
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=_sum(timeouts.get("pool"), timeouts.get("connect")),
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        content = request.content  # the client always sends bytes it built itself
        try:
            async with session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=[
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                ],
                data=content or None,
                allow_redirects=False,
                timeout=timeout,
            ) as answer:
                body = await answer.read()
                response = httpx.Response(answer.status, content=body, request=request)
                response.headers = _AnswerHeaders(answer.raw_headers)
                return response
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except aiohttp.ClientPayloadError as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except aiohttp.InvalidURL as exc:
            raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class _AnswerHeaders(httpx.Headers):
    """An answer's headers, looked up by name through a dict: httpx's own walk the whole
    list on every lookup, and the client reads about ten of them per answer."""

    def __init__(self, raw: Any) -> None:
        super().__init__([(bytes(k), bytes(v)) for k, v in raw])
        self._index()

    def _index(self) -> None:
        by_name: dict[str, str] = {}
        encoding = self.encoding
        for _, key, value in self._list:
            name, text = key.decode(encoding), value.decode(encoding)
            by_name[name] = f"{by_name[name]}, {text}" if name in by_name else text
        self._by_name = by_name

    def __getitem__(self, key: str) -> str:
        try:
            return self._by_name[key.lower()]
        except KeyError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value: str) -> None:
        super().__setitem__(key, value)
        self._index()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._index()


def _sum(*parts: float | None) -> float | None:
    known = [p for p in parts if p is not None]
    return sum(known) if known else None
