"""A throw-away PostgreSQL server for tests and benchmarks (never for real journals).

:class:`Cluster` runs ``initdb`` and ``pg_ctl`` in a temporary folder, on a free loopback
port, with trust authentication for loopback only; :func:`server_url` uses
``BATCHPAY_TEST_POSTGRES_URL`` instead when it is set (a server someone else runs).
As root, the server runs as the ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

__all__ = ["Cluster", "PostgresMissing", "find_binaries", "new_database"]


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries (initdb, pg_ctl) on this machine."""


def find_binaries() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``, or raise PostgresMissing."""
    candidates: list[Path] = []
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(Path(found).resolve().parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    candidates.append(Path("/usr/local/bin"))
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise PostgresMissing(
        "PostgreSQL is not installed (no initdb/pg_ctl); apt-get install postgresql, "
        "or set BATCHPAY_TEST_POSTGRES_URL"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One throw-away PostgreSQL cluster: :meth:`start`, :attr:`url`, :meth:`stop`."""

    def __init__(self) -> None:
        self.bin = find_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="batchpay-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_user: Sequence[str] = ()
        if os.geteuid() == 0:
            # PostgreSQL will not run as root: run it as the postgres user.
            self._as_user = ("runuser", "-u", "postgres", "--")
            shutil.chown(self.root, "postgres")

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as_user, *args], check=True, capture_output=True, cwd=self.root, timeout=120
        )

    def start(self) -> Cluster:
        """initdb and start the server; returns self."""
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C",
        )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop the server (immediately) and remove its folder."""
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def new_database(server_url: str) -> str:
    """Create an empty database on ``server_url``'s server; return its URL."""
    import psycopg

    name = "bp_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"
