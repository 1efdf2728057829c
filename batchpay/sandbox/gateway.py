"""The front door of every /v1 request: request id, auth, rate limit, faults, idempotency.

A pure ASGI middleware, so it can do what a framework response cannot: run the
request to completion and then drop the connection before the body (the
``lost_response`` fault), or answer only after a client has given up (``timeout``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._util import canonical, dumps, parse_json
from .faults import Fault
from .problems import INTERNAL_MESSAGE, ApiProblem, error_envelope
from .ratelimit import Decision
from .routes import ROUTES, UNIMPLEMENTED
from .runtime import Runtime

log = logging.getLogger("batchpay.sandbox")

INPROCESS_EXTENSION = "batchpay.sandbox.inprocess"
MAX_IDEMPOTENCY_KEY = 255
# Expired idempotency keys are deleted in one sweep at most this often (sandbox seconds);
# a per-request sweep scanned the whole table on every POST.
SWEEP_INTERVAL_SECONDS = 60.0

MB = 1024 * 1024
DEFAULT_BODY_LIMIT = 1 * MB
# Request-body limits by path prefix, longest first; the catalog's 413: "1 MB on most
# routes", and its file_too_large names 32 MB for batches (no batch routes exist yet).
BODY_LIMITS: tuple[tuple[str, int], ...] = (("/v1/batches", 32 * MB),)

# Route templates of the /v1 surface, for fault plans and idempotency rules.
V1_ROUTES: tuple[tuple[str, str], ...] = tuple(
    (method, path) for method, path, _ in ROUTES if path.startswith("/v1/")
)
IDEMPOTENCY_REQUIRED = frozenset(
    {
        "POST /v1/batches/{id}/confirm",
        "POST /v1/beneficiaries",
        "POST /v1/beneficiaries/{id}/instruments",
        "POST /v1/payouts",
        "POST /v1/payouts/{id}/cancel",
        "POST /v1/webhooks",
    }
)
_TEMPLATES = [
    (method, template, re.compile("^" + re.sub(r"\{[a-z_]+\}", "[^/]+", template) + "$"))
    for method, template in V1_ROUTES
]


class LostResponse(Exception):
    """Raised after commit to drop the connection before the body (``lost_response``)."""


class SimulatedTimeout(Exception):
    """Raised after commit, in process, to stand for an answer that never comes in time."""


def route_of(method: str, path: str) -> str:
    """``"METHOD /template"`` for a request (the raw path when no route matches)."""
    if path in UNIMPLEMENTED:
        return f"{method} {path}"
    for m, template, regex in _TEMPLATES:
        if m == method and regex.match(path):
            return f"{m} {template}"
    return f"{method} {path}"


def body_limit(path: str) -> int:
    """The largest request body, in bytes, accepted on ``path``."""
    for prefix, limit in BODY_LIMITS:
        if path == prefix or path.startswith(prefix + "/"):
            return limit
    return DEFAULT_BODY_LIMIT


def _request_id(headers: Headers) -> str:
    given = headers.get("x-request-id")
    if given and len(given) <= 200 and given.isprintable():
        return given
    return "req_" + secrets.token_hex(12)


class Gateway:
    """ASGI middleware in front of the Starlette app."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.rt = runtime
        self._swept_at: float | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        # The provider's clock, as a real server states it: clients decide from it, not
        # from their own clock, whether a key is still remembered.
        extra = {
            "X-Request-ID": _request_id(headers),
            "Date": formatdate(self.rt.clock.time(), usegmt=True),
        }
        path: str = scope["path"]
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            if path == "/v1" or path.startswith("/v1/"):
                await self._v1(scope, receive, tracked, headers, extra)
                return
            body = await _read_body(receive, headers, body_limit(path))
            status, resp_headers, resp_body = await self._run(scope, body)
            await _send(tracked, status, resp_headers, resp_body, extra)
        except ClientDisconnected:
            return  # nobody to answer, and nothing was done
        except BodyTooLarge as exc:
            # Answered without reading the rest; the server discards what still arrives.
            problem = ApiProblem(
                413, "file_too_large", f"request body exceeds the {exc.limit // MB} MB limit"
            )
            await _send_problem(tracked, problem, extra)
        except (LostResponse, SimulatedTimeout):
            raise
        except Exception:
            # Whatever broke in here, the client still gets the envelope and a request id.
            log.exception("sandbox gateway failed")
            if started:
                raise
            await _send_problem(send, ApiProblem(500, "internal_error", INTERNAL_MESSAGE), extra)

    async def _v1(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, extra: dict[str, str]
    ) -> None:
        rt = self.rt
        merchant = rt.config.merchant_id
        method: str = scope["method"]
        route = route_of(method, scope["path"])

        problem = self._authenticate(headers.get("authorization"), scope)
        if problem is not None:
            extra.update(_rl(rt.limiter.peek(merchant)))
            await _send_problem(send, problem, extra)
            return
        decision = rt.limiter.hit(merchant)
        extra.update(_rl(decision))
        if decision is not None and not decision.allowed:
            await _send_problem(send, _rate_limited(decision), extra)
            return

        try:
            fault = rt.faults.choose(route, headers.get("x-sandbox-fault"))
        except ValueError as exc:
            await _send_problem(send, ApiProblem(400, "invalid_sandbox_fault", str(exc)), extra)
            return
        if fault.status == 429:
            exhausted = rt.limiter.exhausted(merchant, rt.faults.settings.retry_after_seconds)
            extra.update(exhausted.headers())
            await _send_problem(send, _rate_limited(exhausted), extra)
            return
        if fault.status is not None:
            code = "timeout" if fault.status == 504 else "internal_error"
            await _send_problem(send, ApiProblem(fault.status, code, INTERNAL_MESSAGE), extra)
            return

        body = await _read_body(receive, headers, body_limit(scope["path"]))
        key = headers.get("idempotency-key")
        reserved = False
        if method == "POST":
            if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
                await _send_problem(
                    send,
                    ApiProblem(
                        400,
                        "invalid_idempotency_key",
                        f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY} characters",
                    ),
                    extra,
                )
                return
            if not key:
                if route in IDEMPOTENCY_REQUIRED:
                    await _send_problem(
                        send,
                        ApiProblem(
                            400,
                            "missing_idempotency_key",
                            "this endpoint requires an Idempotency-Key header",
                        ),
                        extra,
                    )
                    return
                key = None
            if key is not None:
                fingerprint = _fingerprint(method, scope["path"], body)
                replay = self._reserve(key, fingerprint)
                if isinstance(replay, ApiProblem):
                    await _send_problem(send, replay, extra)
                    return
                if replay is not None:
                    status, stored = replay
                    extra["X-Idempotent-Replayed"] = "true"
                    json_type = {"content-type": "application/json"}
                    await self._finish(scope, send, fault, status, json_type, stored, extra)
                    return
                reserved = True

        try:
            if fault.kind == "latency":
                await asyncio.sleep(fault.latency_ms / 1000)
            status, resp_headers, resp_body = await self._run(scope, body)
        except BaseException:
            if reserved and key is not None:
                self._release(key)
            raise
        if reserved and key is not None:
            if status >= 500:
                self._release(key)
            else:
                self._complete(key, status, resp_body)
        await self._finish(scope, send, fault, status, resp_headers, resp_body, extra)

    def _authenticate(self, header: str | None, scope: Scope) -> ApiProblem | None:
        if header is None or not header.strip():
            return ApiProblem(401, "unauthorized", "missing Authorization header")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() == "dpop":  # OAuth token + proof: see oauth.py
            return self.rt.oauth.authenticate(token, scope)
        if not self.rt.oauth.accepts_keys:
            return self.rt.oauth.keys_refused()
        if scheme.lower() != "bearer" or not token or " " in token:
            return ApiProblem(401, "unauthorized", "invalid Authorization header format")
        if not token.startswith("ak_"):
            return ApiProblem(401, "invalid_api_key", "invalid API key format")
        if token.startswith("ak_live_"):
            return ApiProblem(
                403,
                "key_environment_mismatch",
                "live API keys are not allowed in the sandbox; use an ak_test_ key",
            )
        if token not in self.rt.api_keys:
            return ApiProblem(401, "invalid_api_key", "invalid API key")
        return None

    # ------------------------------------------------------------ idempotency

    def _reserve(self, key: str, fingerprint: str) -> tuple[int, bytes] | ApiProblem | None:
        """None when the key is new (now held in flight), a replay, or a 409 problem."""
        store = self.rt.store
        now = self.rt.clock.time()
        expired_before = now - self.rt.config.idempotency_ttl_seconds
        with store.tx():
            self._sweep(now, expired_before)
            row = store.one("SELECT * FROM idempotency WHERE key = ?", (key,))
            if row is not None and row["state"] == "done" and row["created_ts"] <= expired_before:
                # Past its window but not yet swept: forgotten all the same, to the second.
                store.execute("DELETE FROM idempotency WHERE key = ?", (key,))
                row = None
            if row is None:
                store.execute(
                    "INSERT INTO idempotency (key, fingerprint, state, created_ts)"
                    " VALUES (?, ?, 'in_flight', ?)",
                    (key, fingerprint, now),
                )
                return None
        if row["fingerprint"] != fingerprint:
            return ApiProblem(
                409,
                "idempotency_conflict",
                "this Idempotency-Key was already used with a different request",
            )
        if row["state"] == "in_flight":
            return ApiProblem(
                409,
                "idempotency_in_flight",
                "a request with this Idempotency-Key is still being processed; retry shortly",
            )
        return int(row["status"]), bytes(row["body"])

    def _sweep(self, now: float, expired_before: float) -> None:
        """Delete expired keys, at most once per ``SWEEP_INTERVAL_SECONDS`` of sandbox time.

        Only storage: a lookup treats an expired key as absent whether or not it was swept,
        so the sweep's timing never changes an answer.
        """
        if self._swept_at is not None and now - self._swept_at < SWEEP_INTERVAL_SECONDS:
            return
        self._swept_at = now
        self.rt.store.execute(
            "DELETE FROM idempotency WHERE created_ts <= ? AND state = 'done'", (expired_before,)
        )

    def _complete(self, key: str, status: int, body: bytes) -> None:
        self.rt.store.execute(
            "UPDATE idempotency SET state = 'done', status = ?, body = ? WHERE key = ?",
            (status, body, key),
        )

    def _release(self, key: str) -> None:
        self.rt.store.execute("DELETE FROM idempotency WHERE key = ?", (key,))

    # ------------------------------------------------------------ running and answering

    async def _run(self, scope: Scope, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Run the downstream app on a buffered body; capture its whole answer."""
        sent = False

        async def replay_receive() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        status = 500
        headers: dict[str, str] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in message["headers"]}
                chunks.clear()
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, replay_receive, capture)
        except Exception:
            log.exception("sandbox handler failed")
            body_out = dumps(error_envelope("internal_error", INTERNAL_MESSAGE))
            return 500, {"content-type": "application/json"}, body_out
        return status, headers, b"".join(chunks)

    async def _finish(
        self,
        scope: Scope,
        send: Send,
        fault: Fault,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        extra: dict[str, str],
    ) -> None:
        inprocess = INPROCESS_EXTENSION in scope.get("extensions", {})
        if fault.kind == "lost_response":
            if not inprocess:
                await _send_start(send, status, headers, body, extra)
            raise LostResponse("connection dropped after the request was committed")
        if fault.kind == "timeout":
            if inprocess:
                raise SimulatedTimeout("answer withheld after the request was committed")
            await asyncio.sleep(self.rt.faults.settings.timeout_seconds)
        await _send(send, status, headers, body, extra)


def _fingerprint(method: str, path: str, body: bytes) -> str:
    try:
        content = canonical(parse_json(body)) if body.strip() else ""
    except ValueError:  # the handler refuses it; a replay must still match byte for byte
        content = "raw:" + hashlib.sha256(body).hexdigest()
    return hashlib.sha256(f"{method} {path}\n{content}".encode()).hexdigest()


def _rate_limited(decision: Decision) -> ApiProblem:
    return ApiProblem(
        429,
        "rate_limit_exceeded",
        f"Rate limit exceeded. Retry after {decision.retry_after} seconds.",
        headers={"Retry-After": str(decision.retry_after)},
    )


def _rl(decision: Decision | None) -> dict[str, str]:
    if decision is None:
        return {}
    return {k: v for k, v in decision.headers().items() if k != "Retry-After"}


class ClientDisconnected(Exception):
    """The client went away before its request body was complete."""


class BodyTooLarge(Exception):
    """The request body is over the route's limit (``limit`` bytes)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes")
        self.limit = limit


async def _read_body(receive: Receive, headers: Headers, limit: int) -> bytes:
    """The whole request body; ClientDisconnected if the client left before sending it all.

    A real server never acts on a request whose body was cut off (a client killed
    mid-request): processing the fragment would store it under the idempotency key.
    BodyTooLarge as soon as the declared length or the bytes received pass ``limit``,
    so an oversized body is never held in memory.
    """
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _header_list(
    headers: Mapping[str, str], body: bytes, extra: Mapping[str, str]
) -> list[tuple[bytes, bytes]]:
    merged: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower() != "content-length":
            merged[name.lower()] = value
    for name, value in extra.items():
        merged[name.lower()] = value
    merged["content-length"] = str(len(body))
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]


async def _send_start(
    send: Send, status: int, headers: Mapping[str, str], body: bytes, extra: Mapping[str, str]
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": _header_list(headers, body, extra),
        }
    )


async def _send(
    send: Send, status: int, headers: Mapping[str, str], body: bytes, extra: Mapping[str, str]
) -> None:
    await _send_start(send, status, headers, body, extra)
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_problem(send: Send, problem: ApiProblem, extra: dict[str, str]) -> None:
    headers: dict[str, Any] = {"content-type": "application/json", **problem.headers}
    await _send(send, problem.status, headers, dumps(problem.envelope()), extra)
