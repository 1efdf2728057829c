"""The one request path of the client: retries, pacing, records, logging and error mapping.

:class:`BaseClient` owns the connection pool and sends every request; the resource methods
of :class:`~batchpay.client.AntonClient` are thin calls of :meth:`BaseClient.request`.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Self

import httpx

from batchpay import __version__
from batchpay.client import wire
from batchpay.client.credentials import Credentials
from batchpay.client.records import ApiResult, CallRecord, OnCall
from batchpay.client.transport import AiohttpTransport, Answer, Sent
from batchpay.client.wire import Json
from batchpay.errors import (
    ApiError,
    BatchpayError,
    ConfigError,
    TransportError,
    api_error_from_response,
)
from batchpay.ratelimit import InFlight, RateLimiter
from batchpay.retry import RetryPolicy

__all__ = ["DEFAULT_USER_AGENT", "BaseClient"]

DEFAULT_USER_AGENT: Final = f"batchpay/{__version__} httpx/{httpx.__version__}"

_PAGE_SIZE: Final = 100
# One logger for the whole client: operators filter on "batchpay.client".
log = logging.getLogger("batchpay.client")
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_DIRECT_URLS_KEPT: Final = 64
"""Paths whose parsed URL the direct hand-off keeps (a run asks a few paths many times)."""


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing: every request carries its own credential, and reading
    each answer's ``Set-Cookie`` through the standard library's jar cost more CPU than
    the rest of the answer's handling."""

    def extract_cookies(self, response: httpx.Response) -> None:
        """Keep nothing."""


class _Client(httpx.AsyncClient):
    """httpx's client without a cookie jar."""

    @property
    def cookies(self) -> httpx.Cookies:
        """Always empty."""
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, _value: Any) -> None:
        pass


_NO_COOKIES: Final = _NoCookies()


@dataclass(slots=True)
class _Attempt:
    response: httpx.Response | Answer | None
    error: BatchpayError | None
    request_id: str
    started_at: datetime
    duration_ms: float


class BaseClient:
    """The connection pool and the one request path; see :class:`~batchpay.client.AntonClient`."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        max_concurrency: int | None = 8,
        on_call: OnCall | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self._credentials = credentials
        self._retry = retry if retry is not None else RetryPolicy()
        # The documented 1,000/min is assumed until the first answer says otherwise.
        self.rate_limiter = (
            rate_limiter if rate_limiter is not None else RateLimiter(learn_unlimited=True)
        )
        self._on_call = on_call
        # Each request's X-Request-ID: this client's random prefix and a counter, as long as
        # a uuid4's hex (one os.urandom call per client, not per request).
        prefix = uuid.uuid4().hex[:20]
        self._request_ids = (f"req_{prefix}{n:012x}" for n in itertools.count(1))
        # None: in flight sized from the pace and the latency (see InFlight).
        limiter = self.rate_limiter
        self._slots = InFlight(max_concurrency, rate=lambda: limiter.rate)
        network = AiohttpTransport() if transport is None else None
        self._http = _Client(
            base_url=base_url,
            auth=credentials,
            # The network through aiohttp's pool (see client.transport); tests plug in the
            # in-process sandbox or an httpx.MockTransport here.
            transport=network if network is not None else transport,
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
        )
        # Over the network with a credential the same on every request (an API key), a
        # request goes straight to the transport as the httpx.Request httpx would build:
        # httpx's client adds nothing such a request needs (no auth flow, redirects or
        # cookies) and its per-request work was a third of the client's CPU per payout.
        static = credentials.static_headers()
        self._direct = network if static is not None else None
        self._direct_base = str(self._http.base_url).rstrip("/")
        # Parsed once per path (a run posts to one path thousands of times); URLs are immutable.
        self._direct_urls: dict[str, httpx.URL] = {}
        self._direct_headers = {**self._http.headers, **(static or {})}
        self._direct_timeouts = self._http.timeout.as_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._http.base_url)!r}, {self._credentials!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (and the transport)."""
        await self._http.aclose()

    # -- the one request path --------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: tuple[bytes, str] | None = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> ApiResult:
        """Send one API request with retries, pacing and records; return the unwrapped answer.

        The body is ``json``, or ``content`` = (bytes, content type) for anything else (a
        multipart upload); either way the same bytes go out on every retry.

        Raises an :class:`~batchpay.errors.ApiError` subclass for an error answer
        and :class:`~batchpay.errors.TransportError` when no trustworthy answer came.
        """
        method = method.upper()
        if idempotency_key is not None:
            wire.check_idempotency_key(idempotency_key)
        headers: dict[str, str] = {}
        body: bytes | None = None
        if json is not None:
            body = wire.encode_json(json)  # once: every retry sends these bytes
            headers["Content-Type"] = "application/json"
        elif content is not None:
            body, headers["Content-Type"] = content
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        query = wire.clean_params(params)
        safe_to_repeat = method in _SAFE_METHODS or idempotency_key is not None
        record_path = path.split("?", 1)[0]

        attempt = 0
        while True:
            attempt += 1
            outcome = await self._send_once(method, path, body, query, headers)
            result: ApiResult | None = None
            error = outcome.error
            if error is None:
                assert outcome.response is not None
                try:
                    result = self._result(outcome, idempotency_key, attempt)
                except TransportError as exc:
                    error = exc
            will_retry = error is not None and self._retry.should_retry(
                error, attempt, safe_to_repeat=safe_to_repeat
            )
            self._record(outcome, method, record_path, error, idempotency_key, attempt, will_retry)
            if result is not None:
                return result
            assert error is not None
            if not will_retry:
                raise error
            await self._retry.wait(self._retry.delay(error, attempt))

    async def _send_once(
        self,
        method: str,
        path: str,
        content: bytes | None,
        params: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> _Attempt:
        request_id = next(self._request_ids)
        await self._slots.acquire()
        status: int | None = None
        t0 = time.perf_counter()
        try:
            permit = await self.rate_limiter.acquire()
            started_at = datetime.now(UTC)
            t0 = time.perf_counter()
            response: httpx.Response | Answer | None = None
            error: BatchpayError | None = None
            try:
                if self._direct is not None:
                    url = self._direct_url(path)
                    request = Sent(
                        method,
                        url.copy_merge_params(params) if params else url,
                        {**self._direct_headers, **headers, "X-Request-ID": request_id},
                        content,
                        self._direct_timeouts,
                    )
                    response = await self._send_direct(request)
                else:
                    response = await self._http.request(
                        method,
                        path,
                        content=content,
                        params=params,
                        headers={**headers, "X-Request-ID": request_id},
                    )
            except BatchpayError as exc:  # raised by the credential's flow (minting a token)
                error = exc
            except httpx.UnsupportedProtocol as exc:
                error = ConfigError(
                    f"the API URL is not http(s): {self._redact(str(exc))}",
                    hint="check the API base URL",
                )
            except (httpx.RequestError, httpx.DecodingError) as exc:
                error = self._transport_error(exc, method, path, request_id)
            finally:
                status = response.status_code if response is not None else None
                self.rate_limiter.observe(
                    permit, status, response.headers if response is not None else {}
                )
            duration_ms = (time.perf_counter() - t0) * 1000.0
        finally:
            self._slots.release(time.perf_counter() - t0, status)
        if response is not None and not response.is_success:
            error = self._api_error(response, request_id)
        return _Attempt(response, error, request_id, started_at, duration_ms)

    def _direct_url(self, path: str) -> httpx.URL:
        url = self._direct_urls.get(path)
        if url is None:
            url = httpx.URL(self._direct_base + path)
            if len(self._direct_urls) < _DIRECT_URLS_KEPT:  # the first few paths, not every id
                self._direct_urls[path] = url
        return url

    async def _send_direct(self, request: Sent) -> Answer:
        """Hand a request to the network transport (the seam tests watch, as they watch
        ``httpx.AsyncClient.send`` for every other request)."""
        assert self._direct is not None
        return await self._direct.send(request)

    def _result(self, outcome: _Attempt, idempotency_key: str | None, attempt: int) -> ApiResult:
        response = outcome.response
        assert response is not None
        body = wire.decode_json(response)
        if body is wire.NOT_JSON:
            raise TransportError(
                f"{response.request.method} {response.request.url.path}: the API answered "
                f"{response.status_code} with a body that is not JSON; outcome unknown",
                request_id=wire.answer_request_id(response, outcome.request_id),
                hint="batchpay retries with the same idempotency key to read the answer again",
            )
        data, has_more, next_cursor = wire.unwrap(body)
        return ApiResult(
            data=data,
            status=response.status_code,
            request_id=wire.answer_request_id(response, outcome.request_id),
            replayed=response.headers.get("x-idempotent-replayed", "").strip().lower() == "true",
            idempotency_key=idempotency_key,
            attempts=attempt,
            has_more=has_more,
            next_cursor=next_cursor,
        )

    def _api_error(self, response: httpx.Response | Answer, request_id: str) -> ApiError:
        body = wire.decode_json(response)
        if body is wire.NOT_JSON:
            body = response.text[:1000]
        error = api_error_from_response(response.status_code, body, response.headers)
        if error.request_id is None:
            error.request_id = request_id
        error.replayed = response.headers.get("x-idempotent-replayed", "").strip().lower() == "true"
        # The server may echo what it was sent; keep secrets out of messages.
        error.message = self._redact(error.message)
        error.args = (error.message,)
        error.body = wire.scrub(error.body, self._redact)
        error.details = wire.scrub(error.details, self._redact)
        return error

    def _transport_error(
        self, exc: Exception, method: str, path: str, request_id: str
    ) -> TransportError:
        timeout = isinstance(exc, httpx.TimeoutException)
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        what = "timed out" if timeout else "could not reach the API"
        detail = self._redact(str(exc)) or type(exc).__name__
        unknown = "" if never_sent or method in _SAFE_METHODS else "; outcome unknown"
        error = TransportError(
            f"{method} {path.split('?', 1)[0]}: {what} ({type(exc).__name__}: {detail}){unknown}",
            timeout=timeout,
            sent=False if never_sent else None,
            request_id=request_id,
        )
        if detail == str(exc):  # keep the cause for --debug tracebacks, unless it holds a secret
            error.__cause__ = exc
        return error

    def _record(
        self,
        outcome: _Attempt,
        method: str,
        path: str,
        error: BatchpayError | None,
        idempotency_key: str | None,
        attempt: int,
        will_retry: bool,
    ) -> None:
        if self._on_call is None and not log.isEnabledFor(logging.INFO):
            return
        response = outcome.response
        code: str | None = None
        if isinstance(error, ApiError):
            code = error.code
        elif isinstance(error, TransportError):
            if response is not None:
                code = "invalid_response"
            else:
                code = "timeout" if error.timeout else "transport_error"
        elif isinstance(error, ConfigError):
            code = "config_error"
        request_id = outcome.request_id
        replayed = False
        server_date = None
        if response is not None:
            request_id = wire.answer_request_id(response, request_id)
            replayed = response.headers.get("x-idempotent-replayed", "").strip().lower() == "true"
            server_date = wire.http_date(response.headers.get("date"))
        status = response.status_code if response is not None else None
        level = logging.WARNING if will_retry else logging.INFO
        if log.isEnabledFor(level):
            self._log_call(level, method, path, status, code, outcome, request_id, replayed,
                           attempt, will_retry)  # fmt: skip
        if self._on_call is None:
            return
        self._on_call(
            CallRecord(
                method=method,
                path=path,
                status=response.status_code if response is not None else None,
                error_code=code,
                request_id=request_id,
                idempotency_key=idempotency_key,
                attempt=attempt,
                duration_ms=round(outcome.duration_ms, 3),
                started_at=outcome.started_at,
                replayed=replayed,
                will_retry=will_retry,
                server_date=server_date,
            )
        )

    @staticmethod
    def _log_call(
        level: int,
        method: str,
        path: str,
        status: int | None,
        code: str | None,
        outcome: _Attempt,
        request_id: str,
        replayed: bool,
        attempt: int,
        will_retry: bool,
    ) -> None:
        log.log(
            level,
            "%s %s -> %s in %.0f ms (request %s%s)%s",
            method, path, status if status is not None else code, outcome.duration_ms,
            request_id, ", replayed" if replayed else "", ", will retry" if will_retry else "",
            extra={"method": method, "path": path, "status": status, "error_code": code,
                   "duration_ms": round(outcome.duration_ms, 3), "request_id": request_id,
                   "attempt": attempt, "will_retry": will_retry},
        )  # fmt: skip

    def _redact(self, text: str) -> str:
        return self._credentials.redact(text)

    async def _paginate(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[Json]:
        """Yield every item of a cursor-paginated list, following ``has_more``/``next_cursor``."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page = await self._page(path, params, cursor)
            for item in page.data:
                yield item
            if not page.has_more:
                return
            assert page.next_cursor is not None
            if page.next_cursor in seen:
                raise ApiError(
                    f"GET {path}: the list says has_more but gives no new next_cursor",
                    status=page.status,
                    code="invalid_pagination",
                    request_id=page.request_id,
                )
            cursor = page.next_cursor
            seen.add(cursor)

    async def _page(
        self, path: str, params: Mapping[str, Any] | None, cursor: str | None
    ) -> ApiResult:
        """One page of a cursor-paginated list (of objects; a ``has_more`` with a cursor)."""
        page_params = {**(params or {}), "limit": _PAGE_SIZE}
        if cursor is not None:
            page_params["cursor"] = cursor
        page = await self.request("GET", path, params=page_params)
        wire.page_items(page, path)
        if page.has_more and not page.next_cursor:
            raise ApiError(
                f"GET {path}: the list says has_more but gives no new next_cursor",
                status=page.status,
                code="invalid_pagination",
                request_id=page.request_id,
            )
        return page

    async def _collect(self, path: str, params: Mapping[str, Any] | None = None) -> list[Json]:
        return [item async for item in self._paginate(path, params)]

    async def _get(self, path: str) -> Json:
        data = (await self.request("GET", path)).data
        if not isinstance(data, dict):
            raise ApiError(
                f"GET {path}: expected an object, got {type(data).__name__}",
                status=200,
                code="invalid_response",
            )
        return data
