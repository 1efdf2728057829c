"""Set-based look-ups for planning: a whole file's rows asked about in one query, not one each.

A payout file of a million rows is planned with a handful of queries: the row keys (or
beneficiary references) travel as one JSON array that SQLite unpacks with ``json_each`` and
joins against the indexed tables (PostgreSQL: ``json_array_elements_text``), so the cost
follows the file, not the journal's history.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from batchpay.journal.base import JournalBase
from batchpay.journal.records import PayoutIntent
from batchpay.journal.states import CREATED


class PlanningLookups(JournalBase):
    """The journal's answers about many rows at once."""

    def holds_payouts(self, environment: str) -> bool:
        """Whether any payout intent was ever made in this environment."""
        return self._any("payouts", environment)

    def holds_runs(self, environment: str) -> bool:
        """Whether any run was ever made in this environment."""
        return self._any("runs", environment)

    def _any(self, table: str, environment: str) -> bool:
        # ``table`` is one of our own table names, never user text
        found = self.db.execute(
            f"SELECT 1 FROM {table} WHERE environment=? LIMIT 1",
            (environment,),
        ).fetchone()
        return found is not None

    def _json_keys(self) -> str:
        """A subquery of the distinct texts of one JSON array parameter, in either dialect."""
        if self.dialect == "postgresql":
            return "SELECT DISTINCT value AS k FROM json_array_elements_text(CAST(? AS json))"
        return "SELECT DISTINCT value AS k FROM json_each(?)"

    def row_histories(
        self, environment: str, row_keys: Iterable[str]
    ) -> dict[str, list[PayoutIntent]]:
        """:meth:`row_history` of every key in ``row_keys`` that has one, in one query."""
        if not self._any("payouts", environment):
            return {}
        rows = self.db.execute(
            f"""SELECT p.* FROM payouts p
               JOIN ({self._json_keys()}) keys ON p.row_key = keys.k
               WHERE p.environment=? ORDER BY p.row_key, p.attempt""",
            (json.dumps(list(row_keys)), environment),
        )
        out: dict[str, list[PayoutIntent]] = {}
        for row in rows:
            intent = PayoutIntent.from_row(row)
            out.setdefault(str(intent.row_key), []).append(intent)
        return out

    def known_beneficiaries(self, environment: str, external_refs: Iterable[str]) -> set[str]:
        """Those of ``external_refs`` the journal holds as created beneficiaries, in one query."""
        if not self._any("beneficiaries", environment):
            return set()
        rows = self.db.execute(
            f"""SELECT b.external_ref FROM beneficiaries b
               JOIN ({self._json_keys()}) refs ON b.external_ref = refs.k
               WHERE b.environment=? AND b.state=?""",
            (json.dumps(list(external_refs)), environment, CREATED),
        )
        return {str(r[0]) for r in rows}

    def created_destinations(
        self, environment: str, external_refs: Iterable[str]
    ) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
        """Of ``external_refs``, the created beneficiaries' ids (by reference) and their
        created instruments' ids (by beneficiary id and credential fingerprint): two queries
        for a whole run, what :meth:`get_beneficiary` and :meth:`get_instrument` would say
        of each."""
        if not self._any("beneficiaries", environment):
            return {}, {}
        bens = {
            str(r[0]): str(r[1])
            for r in self.db.execute(
                f"""SELECT b.external_ref, b.beneficiary_id FROM beneficiaries b
                   JOIN ({self._json_keys()}) refs ON b.external_ref = refs.k
                   WHERE b.environment=? AND b.state=? AND b.beneficiary_id IS NOT NULL""",
                (json.dumps(list(external_refs)), environment, CREATED),
            )
        }
        if not bens:
            return bens, {}
        instruments = {
            (str(r[0]), str(r[1])): str(r[2])
            for r in self.db.execute(
                f"""SELECT i.beneficiary_id, i.credential_fingerprint, i.instrument_id
                   FROM instruments i JOIN ({self._json_keys()}) ids ON i.beneficiary_id = ids.k
                   WHERE i.environment=? AND i.state=? AND i.instrument_id IS NOT NULL""",
                (json.dumps(sorted(set(bens.values()))), environment, CREATED),
            )
        }
        return bens, instruments
