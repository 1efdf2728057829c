"""subscribe(): one subscription per URL at the provider, its secret returned once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchpay.config import Mode, Secret, Settings
from batchpay.errors import ConfigError
from batchpay.journal import Journal
from batchpay.sandbox import DEFAULT_API_KEY, Sandbox, SandboxConfig
from batchpay.webhooks import (
    PAYOUT_EVENTS,
    AlreadySubscribed,
    expand_events,
    subscribe,
    subscription_key,
)

pytestmark = pytest.mark.anyio

URL = "https://hooks.example.com/webhooks/anton"


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """An in-process sandbox that never delivers on its own."""
    sb = Sandbox(SandboxConfig(manual_clock=True, rate_limit_per_minute=None))
    yield sb
    await sb.aclose()


def _settings(tmp_path: Path, mode: Mode = Mode.SANDBOX) -> Settings:
    return Settings(
        mode=mode,
        api_url="http://sandbox.test",
        api_key=Secret(DEFAULT_API_KEY),
        home=tmp_path,
        journal_path=tmp_path / "journal.db",
    )


async def test_subscribe_returns_the_secret_and_every_payout_event(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """payout.* subscribes every payout event; the answer's secret is a masked Secret."""
    sub = await subscribe(URL, settings=_settings(tmp_path), transport=sandbox.transport())
    assert sub.id.startswith("wbh_") and sub.url == URL
    assert sub.events == PAYOUT_EVENTS
    assert sub.secret.reveal().startswith("whsec_") and len(sub.secret.reveal()) == 70
    assert sub.secret.reveal() not in repr(sub)


async def test_request_carries_the_derived_key_and_is_journaled(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The create call uses the key derived from URL and events, recorded in the journal."""
    await subscribe(
        URL, ["payout.completed"], settings=_settings(tmp_path), transport=sandbox.transport()
    )
    with Journal(tmp_path / "journal.db") as j:
        calls = [
            (r["method"], r["path"], r["idempotency_key"])
            for r in j.db.execute("SELECT * FROM api_calls ORDER BY id")
        ]
    assert calls == [
        ("GET", "/v1/webhooks", None),
        ("POST", "/v1/webhooks", subscription_key(URL, ["payout.completed"])),
    ]


async def test_second_subscription_of_the_same_url_is_refused(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Subscribing a URL twice would deliver everything twice: refused, naming the first."""
    first = await subscribe(URL, settings=_settings(tmp_path), transport=sandbox.transport())
    with pytest.raises(AlreadySubscribed) as info:
        await subscribe(
            URL, ["payout.failed"], settings=_settings(tmp_path), transport=sandbox.transport()
        )
    assert info.value.subscription_id == first.id
    assert "rotate" in info.value.hint
    async with sandbox.client() as client:
        assert len((await client.get("/v1/webhooks")).json()["data"]) == 1


async def test_embedded_sandbox_cannot_be_subscribed(tmp_path: Path) -> None:
    """The embedded sandbox dies with the command, so subscribing it is refused up front."""
    with pytest.raises(ConfigError, match="embedded"):
        await subscribe(URL, settings=_settings(tmp_path, Mode.EMBEDDED))
    assert not (tmp_path / "journal.db").exists()


def test_expand_events() -> None:
    """payout.* expands in catalog order; explicit events are kept once, in order."""
    assert expand_events(["payout.*"]) == list(PAYOUT_EVENTS)
    assert expand_events(["payout.failed", "payout.*"])[:2] == ["payout.failed", "payout.created"]
    assert len(expand_events(["payout.*", "payout.sent"])) == len(PAYOUT_EVENTS)
    assert expand_events(["*", " beneficiary.created "]) == ["*", "beneficiary.created"]


@given(
    events=st.lists(st.sampled_from(PAYOUT_EVENTS), min_size=1, unique=True),
    data=st.data(),
)
def test_subscription_key_depends_on_url_and_event_set_only(
    events: list[str], data: st.DataObject
) -> None:
    """Same URL and set of events → same key in any order; another URL or set → another key."""
    shuffled = data.draw(st.permutations(events))
    key = subscription_key(URL, events)
    assert key == subscription_key(URL, shuffled)
    assert key.startswith("bp1-webhook-") and len(key) <= 255
    assert key != subscription_key(URL + "/", events)
    extra = [e for e in PAYOUT_EVENTS if e not in events]
    if extra:
        assert key != subscription_key(URL, [*events, extra[0]])
