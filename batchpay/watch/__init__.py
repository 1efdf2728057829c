"""The drop-folder watcher behind ``batchpay watch SOURCE``: a local folder or SFTP.

Files dropped into SOURCE with a completion marker (``NAME.ok``) — or, when the folder is
configured for it, files that have stopped changing — are claimed by rename into
``processing/``, paid exactly once through :func:`batchpay.run_async`, and answered beside
the input in ``processed/YYYY-MM-DD/`` or ``failed/YYYY-MM-DD/``. See
:mod:`batchpay.watch.watcher` for the protocol.
"""

from __future__ import annotations

from pathlib import Path

from batchpay.config import SftpAuth
from batchpay.watch.folders import Entry, Folder, LocalFolder
from batchpay.watch.manifest import Manifest, read_manifest
from batchpay.watch.watcher import (
    EXIT_PRECEDENCE,
    FileAnswer,
    Outcome,
    PassResult,
    Watcher,
    WatchOptions,
    combine_exit_codes,
    is_temporary,
)

__all__ = [
    "EXIT_PRECEDENCE",
    "Entry",
    "FileAnswer",
    "Folder",
    "LocalFolder",
    "Manifest",
    "Outcome",
    "PassResult",
    "WatchOptions",
    "Watcher",
    "combine_exit_codes",
    "is_temporary",
    "open_folder",
    "read_manifest",
]


def open_folder(source: str, *, sftp_auth: SftpAuth | None = None) -> Folder:
    """The drop folder SOURCE names: ``sftp://user@host[:port]/path``, else a local path.

    ``sftp_auth`` is required for an SFTP folder (see :func:`batchpay.config.read_sftp_auth`).
    """
    if source.startswith("sftp://"):
        from batchpay.errors import ConfigError
        from batchpay.watch.sftp import SftpFolder, parse_sftp_url

        location = parse_sftp_url(source)
        if sftp_auth is None:
            raise ConfigError("an SFTP folder needs credentials", hint="see read_sftp_auth")
        return SftpFolder(location, sftp_auth)
    return LocalFolder(Path(source).expanduser())
