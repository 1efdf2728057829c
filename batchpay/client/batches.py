"""The provider's batch operations (``/v1/batches*``) as client methods."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from batchpay.client import wire
from batchpay.client.base import BaseClient
from batchpay.client.records import ApiResult
from batchpay.client.wire import Json

__all__ = ["BatchMethods", "multipart_file"]


def multipart_file(name: str, data: bytes, media_type: str) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with ``file`` and its SHA-256 as ``file_hash``.

    The boundary is derived from the file's hash, so the same file makes the same bytes:
    a retry under the same Idempotency-Key is the same request, not a conflict.
    """
    digest = hashlib.sha256(data).hexdigest()
    boundary = f"batchpay-{digest[:32]}"
    safe_name = name.replace('"', "").replace("\r", "").replace("\n", "")
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="file_hash"\r\n\r\n',
            digest.encode(),
            f"\r\n--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'.encode(),
            f"Content-Type: {media_type}\r\n\r\n".encode(),
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return body, f"multipart/form-data; boundary={boundary}"


class BatchMethods(BaseClient):
    """Upload, read, confirm and cancel batches; read their errors, results and payouts."""

    async def upload_batch(
        self, name: str, data: bytes, media_type: str, idempotency_key: str
    ) -> ApiResult:
        """``POST /v1/batches``: the file (with its ``file_hash``) as a multipart form."""
        return await self.request(
            "POST",
            "/v1/batches",
            content=multipart_file(name, data, media_type),
            idempotency_key=idempotency_key,
        )

    async def get_batch(self, batch_id: str) -> Json:
        """One batch, with its summary once validated."""
        return await self._get(f"/v1/batches/{wire.path_segment(batch_id)}")

    def iter_batches(
        self, *, status: str | None = None, created_after: datetime | str | None = None
    ) -> AsyncIterator[Json]:
        """Every batch (newest first), optionally of one status or created since a time."""
        params: dict[str, Any] = {"status": status, "created_after": wire.timestamp(created_after)}
        return self._paginate("/v1/batches", params)

    async def confirm_batch(
        self, batch_id: str, idempotency_key: str, source_currency: str | None = None
    ) -> ApiResult:
        """``POST /v1/batches/{id}/confirm`` under a key fixed by the caller."""
        body: Json = {"source_currency": source_currency} if source_currency else {}
        return await self.request(
            "POST",
            f"/v1/batches/{wire.path_segment(batch_id)}/confirm",
            json=body,
            idempotency_key=idempotency_key,
        )

    async def cancel_batch(self, batch_id: str, idempotency_key: str) -> ApiResult:
        """``POST /v1/batches/{id}/cancel`` (only before processing starts)."""
        return await self.request(
            "POST",
            f"/v1/batches/{wire.path_segment(batch_id)}/cancel",
            idempotency_key=idempotency_key,
        )

    async def batch_errors(self, batch_id: str) -> tuple[list[Json], list[Json]]:
        """The batch's row-level validation (errors, warnings)."""
        result = await self.request("GET", f"/v1/batches/{wire.path_segment(batch_id)}/errors")
        data = result.data if isinstance(result.data, dict) else {}
        errors = [e for e in data.get("errors") or [] if isinstance(e, dict)]
        warnings = [w for w in data.get("warnings") or [] if isinstance(w, dict)]
        return errors, warnings

    def iter_batch_results(self, batch_id: str) -> AsyncIterator[Json]:
        """Every per-row result, in file order."""
        return self._paginate(f"/v1/batches/{wire.path_segment(batch_id)}/results")

    def iter_batch_payouts(self, batch_id: str) -> AsyncIterator[Json]:
        """Every payout the batch created, in file order."""
        return self._paginate(f"/v1/batches/{wire.path_segment(batch_id)}/payouts")
