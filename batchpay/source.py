"""Input sources: a payout file as a name, its exact bytes and the files beside it.

The pipeline never opens a path itself: a local file, a file taken from an SFTP drop
folder or bytes handed over by Airflow all arrive as one :class:`PayoutFile`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from batchpay.errors import InputError

if TYPE_CHECKING:
    from batchpay.layout import Layout

CONTROL_SUFFIX = ".ctl"
_MIB = 1024 * 1024


@dataclass(frozen=True)
class PayoutFile:
    """A payout file: its name (for messages and reports), its exact bytes, its sidecars.

    ``sidecars`` maps a suffix appended to the name (``".ctl"`` for declared control
    totals) to that file's bytes.
    """

    name: str
    data: bytes
    sidecars: Mapping[str, bytes] = field(default_factory=dict)

    _digest: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    _hashing: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    @property
    def sha256(self) -> str:
        """The SHA-256 of :attr:`data`, hex: computed once, by whichever thread asks first
        (another asking meanwhile waits for it rather than hashing the file again)."""
        with self._hashing:
            if not self._digest:
                self._digest.append(hashlib.sha256(self.data).hexdigest())
            return self._digest[0]

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.data)

    def sidecar(self, suffix: str) -> bytes | None:
        """The bytes of the file ``name + suffix`` beside it, if there is one."""
        return self.sidecars.get(suffix)


def check_size(size: int, filename: str, layout: Layout) -> None:
    """Refuse a file over ``limits.max_file_bytes``, and an empty one.

    Here, not in :mod:`batchpay.ingest`, so :func:`read_ahead`'s thread refuses or reads a
    file at once: importing the ingest package (polars, the readers) would hold it until the
    command's own imports are done, and the file's hash would then run beside the parse."""
    limit = layout.limits.max_file_bytes
    if size > limit:
        raise InputError(
            f"{filename} is {size / _MIB:.1f} MiB; the limit is {limit / _MIB:.0f} MiB"
            " (limits.max_file_bytes)",
            code="too_large",
            hint="split the file, or raise limits.max_file_bytes in the layout",
        )
    if size == 0:
        raise InputError(f"{filename} is empty", code="empty", hint="export the file again")


def from_path(path: Path | str, layout: Layout) -> PayoutFile:
    """Read a local payout file and its ``.ctl`` beside it; refused unread over the size limit."""
    path = Path(path)
    try:
        check_size(path.stat().st_size, path.name, layout)
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
    """:func:`from_path` in a thread of its own, which then takes the file's SHA-256.

    A command starts it before importing what checks the file (polars, the rules): reading
    and hashing release the GIL, so they overlap the imports, and the hash the parse. The
    future is done once the file is read: its result is the :class:`PayoutFile` (whose
    :attr:`~PayoutFile.sha256`, asked before the thread has it, waits for it), or raises
    what :func:`from_path` raises (a file over the size limit is refused unread, as there).
    """
    done: Future[PayoutFile] = Future()

    def read() -> None:
        try:
            source = from_path(path, layout)
        except BaseException as exc:  # the reader's error is the caller's, as from_path's
            done.set_exception(exc)
            return
        with source._hashing:  # held from now: sha256 waits for this thread's digest
            done.set_result(source)
            source._digest.append(hashlib.sha256(source.data).hexdigest())

    # not a daemon: the interpreter waits for the hash rather than stop it half-way
    threading.Thread(target=read, name="read-ahead").start()
    return done
