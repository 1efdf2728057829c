"""The trigger behind batchpay's deferrable waits: :class:`BatchpayPollTrigger`.

It runs in Airflow's triggerer (no worker slot is held while it waits): every ``interval``
seconds it takes one look — at the drop folder (``kind="file"``) or at a run's payouts
(``kind="run"``, one tracking round that also rewrites the report) — and fires once the look
finds what it waits for, when ``timeout`` passes, or when batchpay raises an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from batchpay.errors import BatchpayError

__all__ = ["BatchpayPollTrigger"]


class BatchpayPollTrigger(BaseTrigger):
    """Wait for a complete file in ``source`` or for run ``run_id``'s payouts to be final."""

    def __init__(
        self,
        *,
        kind: str,
        conn_id: str,
        interval: float,
        timeout: float,
        source: str = "",
        worker: str = "airflow",
        run_id: str = "",
    ) -> None:
        super().__init__()
        self.kind = kind
        self.conn_id = conn_id
        self.interval = float(interval)
        self.timeout = float(timeout)
        self.source = source
        self.worker = worker
        self.run_id = run_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and arguments Airflow stores to recreate the trigger."""
        return (
            "batchpay.airflow.triggers.BatchpayPollTrigger",
            {
                "kind": self.kind,
                "conn_id": self.conn_id,
                "interval": self.interval,
                "timeout": self.timeout,
                "source": self.source,
                "worker": self.worker,
                "run_id": self.run_id,
            },
        )

    def look(self, settings: Any) -> Any:
        """One look (blocking; run in a thread): what was waited for, or None."""
        from batchpay.airflow import steps

        if self.kind == "file":
            drop = steps.Drop(source=self.source, worker=self.worker)
            return steps.pending_files(drop, settings) or None
        pending = steps.follow_round(settings, self.run_id)
        self.log.info("run %s: %d payout(s) not final yet", self.run_id, pending)
        return self.run_id if pending == 0 else None

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Look every ``interval`` seconds until found, timed out, or refused."""
        from batchpay.airflow.hooks import BatchpayHook

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        try:
            settings = await BatchpayHook(self.conn_id).aget_settings()
            while True:
                found = await asyncio.to_thread(self.look, settings)
                if found is not None:
                    yield TriggerEvent({"status": "done", "value": found})
                    return
                if loop.time() + self.interval > deadline:
                    yield TriggerEvent({"status": "timeout", "timeout": self.timeout})
                    return
                await asyncio.sleep(self.interval)
        except BatchpayError as exc:
            yield TriggerEvent(
                {"status": "error", "exit_code": int(exc.exit_code), "message": exc.message,
                 "hint": exc.hint, "retryable": exc.retryable}
            )  # fmt: skip
