"""The journal: one connection to a batchpay journal database, with all its verbs.

The verbs are grouped by subject in mixins (:mod:`~batchpay.journal.runs`,
:mod:`~batchpay.journal.payouts`, :mod:`~batchpay.journal.provider_ledger`,
:mod:`~batchpay.journal.beneficiaries`, :mod:`~batchpay.journal.calls`); this module opens,
creates, migrates and closes the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batchpay.clocks import utcnow
from batchpay.errors import JournalError
from batchpay.files import make_private_dir
from batchpay.journal.batches import BatchSettleVerbs, BatchVerbs
from batchpay.journal.beneficiaries import BeneficiaryVerbs
from batchpay.journal.calls import CallVerbs
from batchpay.journal.claims import ClaimVerbs
from batchpay.journal.locks import AdvisoryLocks, RunLocks
from batchpay.journal.lookups import PlanningLookups
from batchpay.journal.payouts import PayoutVerbs
from batchpay.journal.provider_ledger import LedgerVerbs
from batchpay.journal.runs import RunVerbs
from batchpay.journal.schema import migrate
from batchpay.journal.sqlite import connect, create_atomically, refuse_unusable
from batchpay.journal.target import PostgresURL, is_postgres


class Journal(
    RunVerbs,
    PayoutVerbs,
    LedgerVerbs,
    BeneficiaryVerbs,
    CallVerbs,
    ClaimVerbs,
    PlanningLookups,
    BatchVerbs,
    BatchSettleVerbs,
):
    """A connection to the journal database, SQLite or PostgreSQL. Not shared between threads.

    ``path`` is a SQLite file (a path, or ``":memory:"``) or a :class:`PostgresURL`. Every
    failure of a journal operation (disk full, read-only file or folder, a lock held past
    the busy timeout, a damaged file, a server that cannot be reached) surfaces as a
    :class:`JournalError`.
    """

    def __init__(self, path: Path | str | PostgresURL, *, clock: Any = utcnow) -> None:
        self.clock = clock
        if isinstance(path, str) and is_postgres(path):
            path = PostgresURL(path)
        if isinstance(path, PostgresURL):
            self._open_postgres(path)
            return
        self.dialect = "sqlite"
        self.path = Path(path)
        self.target = self.path
        self._locks = RunLocks(self.path, memory=str(path) == ":memory:")
        target = str(path)
        if target != ":memory:":
            try:
                make_private_dir(self.path.parent)
            except OSError as exc:
                raise JournalError(
                    f"cannot create the journal's folder {self.path.parent} ({exc.strerror})",
                    hint="set BATCHPAY_HOME (or --journal) to a folder you can write",
                ) from None
            if not refuse_unusable(self.path):
                self._create(self.path)
        self.db = connect(target)
        try:
            self._migrate()
        except BaseException:
            self.db.close()
            raise

    def _open_postgres(self, target: PostgresURL) -> None:
        from batchpay.journal.postgres import Connection

        self.dialect = "postgresql"
        self.target = target
        self.path = Path(str(target))  # for messages only: never a file
        self.db = Connection(target)
        self._locks = AdvisoryLocks(self.db)
        try:
            self._migrate()
        except BaseException:
            self.db.close()
            raise

    def _create(self, path: Path) -> None:
        """Make a new, migrated journal at ``path`` (see :func:`create_atomically`)."""
        create_atomically(path, lambda db: migrate(db, self.now))

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (and give back any run lock still held)."""
        self._closed = True
        try:
            self._locks.drop_all()
        finally:
            self._stop_checkpointer()
            self.db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        migrate(self.db, self.now, self.dialect)

    def applied_migrations(self) -> list[str]:
        """Names of the migrations applied to this journal, in order."""
        return [r[0] for r in self.db.execute("SELECT name FROM migrations ORDER BY name")]
