"""The Python handle on a sandbox: the app, an in-process transport, the clock and the books."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from .app import build_app
from .clock import SandboxClock
from .config import SandboxConfig
from .faults import Faults
from .gateway import INPROCESS_EXTENSION, LostResponse, SimulatedTimeout
from .oauth import dpop_key_path
from .runtime import Runtime
from .validation import validate_beneficiary, validate_instrument


class _InProcess:
    """Marks requests as in-process so faults surface as httpx errors, not real sleeps."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = {**scope.get("extensions", {}), INPROCESS_EXTENSION: {}}
        await self._app({**scope, "extensions": extensions}, receive, send)


class SandboxTransport(httpx.AsyncBaseTransport):
    """In-process transport: ``httpx.ASGITransport`` plus faithful transport failures.

    A ``lost_response`` fault raises :class:`httpx.ReadError` and a ``timeout`` fault
    :class:`httpx.ReadTimeout`, both only after the server committed the request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._asgi = httpx.ASGITransport(app=_InProcess(app))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request to the app."""
        try:
            return await self._asgi.handle_async_request(request)
        except LostResponse:
            raise httpx.ReadError(
                "connection closed by the sandbox after it committed the request "
                "(lost_response fault)",
                request=request,
            ) from None
        except SimulatedTimeout:
            raise httpx.ReadTimeout(
                "no answer in time; the sandbox committed the request (timeout fault)",
                request=request,
            ) from None

    async def aclose(self) -> None:
        """Close the underlying ASGI transport."""
        await self._asgi.aclose()


class Sandbox:
    """A local, stateful Anton Payments API: serve it, or use it in process.

    ``Sandbox(SandboxConfig(manual_clock=True))`` gives a sandbox whose clock moves
    only through :meth:`advance`; ``async with Sandbox()`` runs the background ticker
    that moves payouts along and delivers webhooks on the wall clock.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._rt = Runtime(self.config)
        self.app: ASGIApp = build_app(self._rt)
        self._ticker: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ wiring

    def transport(self) -> SandboxTransport:
        """A new in-process transport for ``httpx.AsyncClient(transport=..., base_url=...)``."""
        return SandboxTransport(self.app)

    def client(self, *, api_key: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` wired to this sandbox with a valid credential: an API key,
        or, when the sandbox accepts OAuth only, the first OAuth client with the test DPoP key.
        """
        headers = dict(kwargs.pop("headers", {}))
        if api_key is not None or self._rt.oauth.accepts_keys:
            headers = {"Authorization": f"Bearer {api_key or self.config.api_keys[0]}", **headers}
        else:
            kwargs.setdefault("auth", self.oauth_credentials())
        return httpx.AsyncClient(
            transport=self.transport(),
            base_url=kwargs.pop("base_url", "http://sandbox.local"),
            headers=headers,
            **kwargs,
        )

    def oauth_credentials(self) -> httpx.Auth:
        """A :class:`batchpay.auth.OAuthClient` for the first configured OAuth client, signing
        with the shipped test DPoP key (valid when ``dpop_jwk`` was left at its default)."""
        from batchpay.auth import DPoPKey, OAuthClient

        client_id, secret = self.config.oauth_clients[0]
        key = DPoPKey.load(Path(dpop_key_path()).read_text(encoding="utf-8"))
        return OAuthClient(client_id, secret, key)

    @property
    def clock(self) -> SandboxClock:
        """The sandbox clock (``now()``, ``advance(seconds)``)."""
        return self._rt.clock

    @property
    def faults(self) -> Faults:
        """The fault switchboard (``set``, ``plan``, ``clear``)."""
        return self._rt.faults

    # ------------------------------------------------------------ time

    async def tick(self) -> dict[str, Any]:
        """Apply due payout transitions and attempt due webhook deliveries."""
        return await self._rt.tick()

    async def advance(self, seconds: float) -> dict[str, Any]:
        """Move the clock forward, then tick."""
        self._rt.advance_clock(seconds)
        return await self._rt.tick()

    # ------------------------------------------------------------ inspection and setup

    def ledger(self) -> list[dict[str, Any]]:
        """Every payout the server created, oldest first, including ones whose answer was lost."""
        return self._rt.bank.ledger()

    def batches(self) -> list[dict[str, Any]]:
        """Every batch uploaded, oldest first, with its ``file_hash``."""
        return self._rt.bank.batches.all()

    def deliveries(self) -> list[dict[str, Any]]:
        """Every webhook delivery record, oldest first."""
        return self._rt.bank.deliveries()

    def webhook_events(self) -> list[dict[str, Any]]:
        """Every webhook event generated, oldest first."""
        return self._rt.bank.webhook_events()

    def balance(self, currency: str) -> dict[str, Any]:
        """One balance, as ``GET /v1/balances/{currency}`` shows it."""
        return self._rt.bank.get_balance(currency)

    def set_balance(self, currency: str, available: str) -> dict[str, Any]:
        """Set the available funds in ``currency``."""
        return self._rt.bank.set_balance(currency, available)

    def set_rate_limit(self, per_minute: int | None, *, multiplier: int = 1) -> None:
        """Set the per-minute ceiling (None = off) and the tier multiplier (1, 2, 5, 10, 20)."""
        self._rt.limiter.configure(per_minute=per_minute, multiplier=multiplier)

    def add_api_key(self, key: str) -> None:
        """Accept another ``ak_test_`` key."""
        if not key.startswith("ak_test_"):
            raise ValueError("sandbox keys start with ak_test_")
        self._rt.api_keys.add(key)

    def seed_beneficiary(
        self, body: dict[str, Any], instruments: list[dict[str, Any]] | tuple[()] = ()
    ) -> dict[str, Any]:
        """Create a beneficiary (and instruments) directly, with the API's validation.

        Returns the beneficiary with an extra ``instruments`` list.
        """
        bank = self._rt.bank
        beneficiary = bank.create_beneficiary(validate_beneficiary(body))
        created = [
            bank.create_instrument(beneficiary["id"], validate_instrument(i)) for i in instruments
        ]
        return {**beneficiary, "instruments": created}

    def reset(self) -> None:
        """Forget all state, reload the configured balances and clear faults."""
        self._rt.bank.reset()
        self._rt.faults.clear()

    # ------------------------------------------------------------ lifecycle

    def start_ticker(self) -> None:
        """Run the background ticker on the current event loop (no-op if running)."""
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._rt.run_ticker())

    async def aclose(self) -> None:
        """Stop the ticker, close the webhook client and the store."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self._rt.aclose()
        self._rt.close()

    def close(self) -> None:
        """Close the store (use ``aclose`` when a ticker or webhook client may be running)."""
        self._rt.close()

    async def __aenter__(self) -> Sandbox:
        if not self.config.manual_clock:
            self.start_ticker()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
