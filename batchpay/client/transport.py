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

:meth:`AiohttpTransport.send` is the same hand-off without httpx's models, for requests
the client builds whole itself (an API key, no auth flow): a :class:`Sent` in, an
:class:`Answer` out — the fields the client reads of ``httpx.Request``/``httpx.Response``
and nothing else. Building those two objects cost more CPU per payout than aiohttp's
whole request (``scripts/bench_run.py``).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import certifi
import httpx
from yarl import URL

from batchpay.ratelimit import max_in_flight

__all__ = ["AiohttpTransport", "Answer", "Sent"]

# aiohttp adds these itself unless told not to; httpx has already set what it wants.
_SKIP_AUTO = frozenset({"User-Agent", "Accept-Encoding", "Accept", "Content-Type"})
_URLS_KEPT = 64
"""Targets whose parsed URL :meth:`AiohttpTransport.send` keeps (a run posts to one path)."""


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """certifi's CA bundle, verified: made on the first https request (loading the bundle
    costs tens of milliseconds, which a run against a local ``http://`` sandbox never needs)."""
    return ssl.create_default_context(cafile=certifi.where())


@dataclass(slots=True)
class Sent:
    """A request as the client hands it to :meth:`AiohttpTransport.send`."""

    method: str
    url: httpx.URL
    headers: dict[str, str]
    content: bytes | None
    timeouts: Mapping[str, float | None]
    """httpx's timeout extension: ``connect``, ``read``, ``write``, ``pool`` seconds."""


class Answer:
    """An answer read whole: what the client reads of an ``httpx.Response``."""

    __slots__ = ("content", "headers", "request", "status_code")

    def __init__(self, status_code: int, headers: httpx.Headers, content: bytes, request: Sent):
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.request = request

    @property
    def is_success(self) -> bool:
        """A 2xx status."""
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        """The body as text (for messages; a body that is not UTF-8 keeps its readable part)."""
        return self.content.decode("utf-8", errors="replace")


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` that sends through one ``aiohttp`` session.

    ``limit`` caps the open connections (the client's own in-flight sizing decides how
    many requests are sent at once; by default as many connections as it may have requests
    in flight, so none waits in the pool). The session is made on the first request, inside
    the running event loop, and closed by :meth:`aclose`.
    """

    def __init__(self, *, limit: int | None = None) -> None:
        self._limit = max_in_flight() if limit is None else limit
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._limit)
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
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        status, raw, body = await self._exchange(
            request.method,
            URL(str(request.url), encoded=True),
            headers,
            request.content,  # the client always sends bytes it built itself
            self._timeout(request.extensions.get("timeout") or {}),
            request,
        )
        return _response(status, _AnswerHeaders(raw), body, request)

    async def send(self, sent: Sent) -> Answer:
        """Send ``sent`` and read its whole answer; failures raised as httpx's (without a
        request: the client reads only their type and message)."""
        status, raw, body = await self._exchange(
            sent.method, self._url(sent.url), sent.headers, sent.content,
            self._timeout(sent.timeouts), None,
        )  # fmt: skip
        headers = _AnswerHeaders(raw)
        if headers.get("content-encoding", "identity").strip().lower() != "identity":
            # gzip and the like (httpx advertised what it can decode): httpx decodes it.
            body = _response(status, headers, body, None).content
        return Answer(status, headers, body, sent)

    async def _exchange(
        self,
        method: str,
        url: URL,
        headers: Any,
        content: bytes | None,
        timeout: aiohttp.ClientTimeout,
        request: httpx.Request | None,
    ) -> tuple[int, Any, bytes]:
        """One request over the session: the answer's status, raw headers and body (still
        encoded); aiohttp's failures raised as httpx's."""
        session = self._open()
        with _as_httpx_errors(request):
            async with session.request(
                method,
                url,
                headers=headers,
                data=content or None,
                allow_redirects=False,
                timeout=timeout,
                ssl=_tls_context() if url.scheme == "https" else True,
            ) as answer:
                return answer.status, answer.raw_headers, await answer.read()

    def _url(self, url: httpx.URL) -> URL:
        target = str(url)
        parsed = self._urls.get(target)
        if parsed is None:
            parsed = URL(target, encoded=True)  # httpx.URL's text is already encoded
            if len(self._urls) < _URLS_KEPT:
                self._urls[target] = parsed
        return parsed

    def _timeout(self, timeouts: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        key = (timeouts.get("pool"), timeouts.get("connect"), timeouts.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None,
                connect=_sum(key[0], key[1]),
                sock_connect=key[1],
                sock_read=key[2],
            )
        return timeout

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class _AnswerHeaders(httpx.Headers):
    """An answer's headers, looked up by name through a dict: httpx's own walk the whole
    list on every lookup, and the client reads about ten of them per answer."""

    def __init__(self, raw: Any) -> None:
        # What httpx.Headers.__init__ builds from byte pairs, without its per-pair checks:
        # aiohttp's raw headers are (name, value) bytes as they came.
        self._list = [(bytes(k), bytes(k).lower(), bytes(v)) for k, v in raw]
        self._encoding = None
        self._index()

    def _index(self) -> None:
        by_name: dict[str, str] = {}
        try:  # nearly always ASCII, which every encoding httpx would choose reads alike
            pairs = [(key.decode("ascii"), value.decode("ascii")) for _, key, value in self._list]
        except UnicodeDecodeError:
            encoding = self.encoding
            pairs = [(key.decode(encoding), value.decode(encoding)) for _, key, value in self._list]
        for name, text in pairs:
            by_name[name] = f"{by_name[name]}, {text}" if name in by_name else text
        self._by_name = by_name

    def get(self, key: str, default: Any = None) -> Any:
        """The header's value (several joined by ``, ``), else ``default``."""
        return self._by_name.get(key.lower(), default)

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


def _response(
    status: int, headers: httpx.Headers, body: bytes, request: httpx.Request | None
) -> httpx.Response:
    """The answer as httpx's, its body decoded by httpx as its own by the answer's headers
    (a body that does not decode raises ``httpx.DecodingError``)."""
    response = httpx.Response(status, stream=httpx.ByteStream(body), request=request)
    response.headers = headers
    response.read()
    return response


@contextmanager
def _as_httpx_errors(request: httpx.Request | None) -> Iterator[None]:
    """aiohttp's failures as httpx's exceptions."""
    try:
        yield
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


def _sum(*parts: float | None) -> float | None:
    known = [p for p in parts if p is not None]
    return sum(known) if known else None
