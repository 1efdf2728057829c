"""Input sources: a payout file as a name, its exact bytes and the files beside it.

The pipeline never opens a path itself: a local file, a file taken from an SFTP drop
folder or bytes handed over by Airflow all arrive as one :class:`PayoutFile`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from batchpay.errors import InputError

if TYPE_CHECKING:
    from batchpay.layout import Layout

CONTROL_SUFFIX = ".ctl"


@dataclass(frozen=True)
class PayoutFile:
    """A payout file: its name (for messages and reports), its exact bytes, its sidecars.

    ``sidecars`` maps a suffix appended to the name (``".ctl"`` for declared control
    totals) to that file's bytes.
    """

    name: str
    data: bytes
    sidecars: Mapping[str, bytes] = field(default_factory=dict)

    @cached_property
    def sha256(self) -> str:
        """The SHA-256 of :attr:`data`, hex (computed once, by whichever thread asks first)."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.data)

    def sidecar(self, suffix: str) -> bytes | None:
        """The bytes of the file ``name + suffix`` beside it, if there is one."""
        return self.sidecars.get(suffix)


def from_path(path: Path | str, layout: Layout) -> PayoutFile:
    """Read a local payout file and its ``.ctl`` beside it; refused unread over the size limit."""
    from batchpay.ingest import sniff

    path = Path(path)
    try:
        sniff.check_size(path.stat().st_size, path.name, layout)
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read {path}: {exc.strerror or exc}",
            code="not_found" if isinstance(exc, FileNotFoundError) else "unreadable",
            hint="check the path and that batchpay may read the file",
        ) from exc
    sidecars: dict[str, bytes] = {}
    ctl = path.with_name(path.name + CONTROL_SUFFIX)
    if ctl.is_file():
        try:
            sidecars[CONTROL_SUFFIX] = ctl.read_bytes()
        except OSError as exc:
            raise InputError(
                f"cannot read the control file {ctl.name}: {exc.strerror or exc}",
                code="unreadable",
                hint="check that batchpay may read it, or remove it",
            ) from exc
    return PayoutFile(path.name, data, sidecars)


def read_ahead(path: Path | str, layout: Layout) -> Future[PayoutFile]:
    """:func:`from_path` in a thread of its own, the file's SHA-256 taken there too.

    A command starts it before importing what checks the file (polars, the rules): reading
    and hashing release the GIL, so they overlap the imports. The future's result is the
    :class:`PayoutFile`, or raises what :func:`from_path` raises (a file over the size
    limit is refused unread, as there).
    """

    def read() -> PayoutFile:
        source = from_path(path, layout)
        _ = source.sha256
        return source

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
    try:
        return pool.submit(read)
    finally:
        pool.shutdown(wait=False)  # the read goes on; the interpreter waits for it at exit
