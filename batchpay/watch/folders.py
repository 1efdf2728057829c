"""Drop folders: the few file operations the watcher needs, on a local folder or over SFTP.

Paths are relative to the folder's root and ``/``-separated. Two renames with different
promises are kept apart, because the claim protocol needs both:

* :meth:`Folder.claim` is exclusive on the *source*: when two watchers rename one file at
  once, exactly one succeeds and the other is told the file is gone (not an error).
* :meth:`Folder.move_new` is exclusive on the *target*: it never replaces an existing file,
  so an earlier answer in ``processed/`` or ``failed/`` is never overwritten.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from batchpay.errors import ConfigError, InputError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One regular file in a folder: its name, size and modification time (seconds)."""

    name: str
    size: int
    mtime: float


@dataclass(frozen=True)
class Download:
    """A file's exact bytes and their SHA-256, computed while it was read (read once)."""

    data: bytes
    sha256: str


class Folder(Protocol):
    """A drop folder: a local directory or a directory on an SFTP server."""

    display: str

    async def files(self, path: str) -> list[Entry]:
        """The regular files directly in ``path`` (none when it does not exist)."""
        ...

    async def folders(self, path: str) -> list[str]:
        """The names of the folders directly in ``path`` (none when it does not exist)."""
        ...

    async def exists(self, path: str) -> bool:
        """Whether anything exists at ``path``."""
        ...

    async def makedirs(self, path: str) -> None:
        """Create ``path`` and its parents when missing."""
        ...

    async def read(self, path: str) -> Download:
        """The bytes of ``path`` read once, in chunks, hashing as they arrive."""
        ...

    async def claim(self, src: str, dst: str) -> bool:
        """Rename ``src`` to ``dst`` (which must not exist); False if ``src`` is gone."""
        ...

    async def move_new(self, src: str, dst: str) -> bool:
        """Rename ``src`` to ``dst`` unless ``dst`` exists (then False; nothing changes)."""
        ...

    async def write(self, path: str, data: bytes) -> None:
        """Write ``path`` whole: a temporary dot-name first, renamed into place."""
        ...

    async def upload(self, local: Path, path: str) -> None:
        """Copy the local file ``local`` to ``path`` (streamed, whole or not at all)."""
        ...

    async def remove(self, path: str) -> None:
        """Remove the file at ``path`` if it exists."""
        ...

    async def aclose(self) -> None:
        """Release the connection, if any."""
        ...


def join(*parts: str) -> str:
    """``parts`` joined with ``/``, empty parts dropped."""
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def temp_name(path: str) -> str:
    """A dot-name beside ``path`` that no watcher ever takes (dot-files are ignored)."""
    head, _, name = path.rpartition("/")
    return join(head, f".{name}.{secrets.token_hex(6)}.tmp")


class LocalFolder:
    """A drop folder on this machine's file system."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.display = str(root)
        if not root.is_dir():
            raise ConfigError(
                f"the drop folder {root} does not exist or is not a folder",
                hint="create it, or check the path given to `batchpay watch`",
            )

    def _p(self, path: str) -> Path:
        return self.root / path if path else self.root

    async def files(self, path: str) -> list[Entry]:
        """The regular files directly in ``path``."""
        found = []
        try:
            with os.scandir(self._p(path)) as it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        found.append(Entry(e.name, st.st_size, st.st_mtime))
        except FileNotFoundError:
            return []
        return sorted(found, key=lambda e: e.name)

    async def folders(self, path: str) -> list[str]:
        """The folders directly in ``path``."""
        try:
            with os.scandir(self._p(path)) as it:
                return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []

    async def exists(self, path: str) -> bool:
        """Whether anything exists at ``path``."""
        return os.path.lexists(self._p(path))

    async def makedirs(self, path: str) -> None:
        """Create ``path`` (0700 when new) and its parents."""
        self._p(path).mkdir(mode=0o700, parents=True, exist_ok=True)

    async def read(self, path: str) -> Download:
        """The bytes of ``path`` and their SHA-256, read once."""
        digest = hashlib.sha256()
        chunks: list[bytes] = []
        try:
            with self._p(path).open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
                    chunks.append(chunk)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
        return Download(b"".join(chunks), digest.hexdigest())

    async def claim(self, src: str, dst: str) -> bool:
        """os.rename: of two watchers renaming one file, the second finds it gone."""
        if await self.exists(dst):
            raise FileExistsError(errno.EEXIST, "claim target exists", dst)
        try:
            os.rename(self._p(src), self._p(dst))
        except FileNotFoundError:
            return False
        return True

    async def move_new(self, src: str, dst: str) -> bool:
        """A hard link refuses an existing target atomically; then the source is unlinked."""
        s, d = self._p(src), self._p(dst)
        try:
            os.link(s, d)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            # A file system without hard links: check, then rename (a narrow window).
            if os.path.lexists(d):
                return False
            os.rename(s, d)
            return True
        os.unlink(s)
        return True

    async def write(self, path: str, data: bytes) -> None:
        """Write a temporary file (0600), then rename it into place."""
        tmp = self._p(temp_name(path))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self._p(path))
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    async def upload(self, local: Path, path: str) -> None:
        """Copy ``local`` in chunks to a temporary name, then rename it into place."""
        tmp = self._p(temp_name(path))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out, local.open("rb") as src:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
            os.replace(tmp, self._p(path))
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    async def remove(self, path: str) -> None:
        """Remove ``path`` if it exists."""
        with contextlib.suppress(FileNotFoundError):
            self._p(path).unlink()

    async def aclose(self) -> None:
        """Nothing to release."""


def split_names(entries: Sequence[Entry]) -> dict[str, Entry]:
    """Entries by name."""
    return {e.name: e for e in entries}
