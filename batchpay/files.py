"""Files only their owner can read: batchpay's folders (0700) and files (0600).

The journal, its side files and the reports hold names, amounts and bank details, so they
are created with explicit modes; the process umask is never changed.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents as owner-only folders; existing ones are kept."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            if not folder.is_dir():
                raise
            continue  # another process made it meanwhile
        os.chmod(folder, DIR_MODE)  # a restrictive umask must not leave it unusable either
    if not path.is_dir():
        raise NotADirectoryError(20, "Not a directory", str(path))


def create_private_file(path: Path) -> None:
    """Create the empty file ``path`` readable by its owner only; fail if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    os.close(fd)


def open_files_limit() -> int | None:
    """How many files this process may have open at once (the soft ``RLIMIT_NOFILE``); None
    where it is unlimited or cannot be asked (no ``resource`` module on Windows)."""
    try:
        import resource
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft
