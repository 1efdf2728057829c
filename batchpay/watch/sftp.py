"""A drop folder on an SFTP server, through asyncssh (the ``sftp`` extra).

Key authentication with the file named by ``BATCHPAY_SFTP_KEY_FILE`` (or ``--key-file``);
a password only from the environment or a file; the server's host key always checked
against known_hosts — an unknown or changed key refuses to connect (exit 6), naming the
key's fingerprint. A dropped connection is reopened and the operation tried again; a
rename whose answer was lost is judged by where the file now is.

asyncssh is imported only here, and only when an ``sftp://`` folder is opened, so
``import batchpay`` stays light and works without the extra.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from batchpay.config import SftpAuth
from batchpay.errors import ConfigError, InputError, TransportError
from batchpay.watch.folders import CHUNK, Download, Entry, join, temp_name

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_PORT = 22
RECONNECT_ATTEMPTS = 3
EXTRA_HINT = "install it with: pip install 'batchpay[sftp]'"


@dataclass(frozen=True)
class SftpLocation:
    """Where an ``sftp://user@host[:port]/path`` URL points."""

    user: str
    host: str
    port: int
    path: str

    @property
    def display(self) -> str:
        """The URL, without any secret (there never is one in it)."""
        port = "" if self.port == DEFAULT_PORT else f":{self.port}"
        return f"sftp://{self.user}@{self.host}{port}/{self.path.lstrip('/')}"


def parse_sftp_url(url: str) -> SftpLocation:
    """Split an ``sftp://`` URL; ``/~/dir`` is relative to the login folder, ``/dir`` absolute.

    A password in the URL is refused: passwords come only from the environment or a file.
    """
    parts = urlsplit(url)
    if parts.scheme != "sftp" or not parts.hostname:
        raise ConfigError(f"{url!r} is not an sftp://user@host[:port]/path URL")
    if parts.password is not None:
        raise ConfigError(
            "the SFTP URL contains a password; it would show in process lists and logs",
            hint="remove it from the URL and set BATCHPAY_SFTP_PASSWORD_FILE instead",
        )
    if not parts.username:
        raise ConfigError(f"the SFTP URL {url!r} names no user", hint="write sftp://USER@HOST/path")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ConfigError(f"the SFTP URL {url!r} has an invalid port") from None
    path = unquote(parts.path) or "/"
    if path.startswith("/~/") or path == "/~":
        path = path[3:] or "."
    return SftpLocation(unquote(parts.username), parts.hostname, port, path)


def _asyncssh() -> Any:
    try:
        import asyncssh
    except ImportError:
        raise ConfigError(
            "watching an sftp:// folder needs the SFTP support, which is not installed",
            hint=EXTRA_HINT,
        ) from None
    return asyncssh


class SftpFolder:
    """A drop folder on an SFTP server; connects on first use, reconnects when dropped."""

    def __init__(
        self, location: SftpLocation, auth: SftpAuth, *, connect_timeout: float = 30.0
    ) -> None:
        self.location = location
        self.auth = auth
        self.display = location.display
        self.connect_timeout = connect_timeout
        self._ssh: Any = _asyncssh()
        self._conn: Any = None
        self._sftp: Any = None

    # -- the connection ---------------------------------------------------------------------

    async def _client(self) -> Any:
        if self._sftp is None:
            await self._connect()
        return self._sftp

    async def _connect(self) -> None:
        ssh, loc, auth = self._ssh, self.location, self.auth
        kwargs: dict[str, Any] = {
            "username": loc.user,
            "known_hosts": str(auth.known_hosts),
            "client_keys": [str(auth.key_file)] if auth.key_file else None,
            "password": auth.password.reveal() if auth.password else None,
            "agent_path": None,  # only the configured key, never whatever an agent holds
            "config": None,  # and never ~/.ssh/config's surprises
            "connect_timeout": self.connect_timeout,
        }
        try:
            self._conn = await ssh.connect(loc.host, loc.port, **kwargs)
            self._sftp = await self._conn.start_sftp_client()
        except ssh.HostKeyNotVerifiable:
            raise await self._host_key_refusal() from None
        except ssh.PermissionDenied:
            raise ConfigError(
                f"the SFTP server {loc.host} refused the login of {loc.user!r}",
                hint="check the key (BATCHPAY_SFTP_KEY_FILE) or password and the user name",
            ) from None
        except ssh.KeyImportError as exc:
            raise ConfigError(
                f"cannot read the SFTP private key {auth.key_file}: {exc}",
                hint="give an unencrypted OpenSSH or PEM private key file",
            ) from None
        except (OSError, TimeoutError, ssh.Error) as exc:
            raise TransportError(
                f"cannot reach the SFTP server {loc.host}:{loc.port} ({_why(exc)})",
                sent=False,
                hint="check the host, port and network; the next pass tries again",
            ) from None
        log.info("connected to %s", self.display, extra={"folder": self.display})

    async def _host_key_refusal(self) -> ConfigError:
        """Say which key the server showed, and whether it is unknown or changed."""
        ssh, loc = self._ssh, self.location
        fingerprint = "unknown"
        with contextlib.suppress(Exception):
            key = await ssh.get_server_host_key(loc.host, loc.port)
            if key is not None:
                fingerprint = key.get_fingerprint("sha256")
        changed = False
        with contextlib.suppress(Exception):
            known = ssh.read_known_hosts(str(self.auth.known_hosts))
            trusted = known.match(loc.host, "", loc.port)[0]
            changed = bool(trusted)
        what = "changed" if changed else "is not in"
        if changed:
            message = (
                f"the host key of {loc.host}:{loc.port} has CHANGED: it now shows {fingerprint}, "
                f"not the key {self.auth.known_hosts} holds; refusing to connect"
            )
            hint = "someone may be impersonating the server; ask its owner before updating it"
        else:
            message = (
                f"the host key of {loc.host}:{loc.port} ({fingerprint}) {what} "
                f"{self.auth.known_hosts}; refusing to connect"
            )
            hint = (
                "check the fingerprint with the server's owner, then add the key to "
                "known_hosts (or point BATCHPAY_SFTP_KNOWN_HOSTS at the right file)"
            )
        return ConfigError(message, hint=hint)

    async def _drop(self) -> None:
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.wait_closed()

    async def _call(self, op: Callable[[Any], Awaitable[T]], what: str) -> T:
        """Run ``op(sftp)``; when the connection drops, reconnect and run it again."""
        ssh = self._ssh
        for attempt in range(1, RECONNECT_ATTEMPTS + 1):
            sftp = await self._client()
            try:
                return await op(sftp)
            except ssh.SFTPError as exc:
                if exc.code not in (ssh.FX_CONNECTION_LOST, ssh.FX_NO_CONNECTION):
                    raise
                error: BaseException = exc
            except (ssh.DisconnectError, ssh.ConnectionLost, ConnectionError) as exc:
                error = exc
            log.warning(
                "SFTP connection to %s dropped during %s (%s); reconnecting", self.display,
                what, _why(error), extra={"folder": self.display, "attempt": attempt},
            )  # fmt: skip
            await self._drop()
            await asyncio.sleep(min(0.5 * attempt, 2.0))
        raise TransportError(
            f"the SFTP connection to {self.display} keeps dropping ({what})",
            hint="check the server and the network; the next pass tries again",
        )

    def _p(self, path: str) -> str:
        root = self.location.path
        return join(root, path) if not root.startswith("/") else "/" + join(root, path)

    # -- the Folder operations --------------------------------------------------------------

    async def files(self, path: str) -> list[Entry]:
        """The regular files directly in ``path``."""
        ssh = self._ssh

        async def op(sftp: Any) -> list[Entry]:
            try:
                names = await sftp.readdir(self._p(path))
            except ssh.SFTPNoSuchFile:
                return []
            found = []
            for n in names:
                a = n.attrs
                if a.permissions is not None and stat.S_ISREG(a.permissions):
                    found.append(Entry(n.filename, int(a.size or 0), float(a.mtime or 0)))
            return sorted(found, key=lambda e: e.name)

        return await self._call(op, f"listing {path or '.'}")

    async def folders(self, path: str) -> list[str]:
        """The folders directly in ``path``."""
        ssh = self._ssh

        async def op(sftp: Any) -> list[str]:
            try:
                names = await sftp.readdir(self._p(path))
            except ssh.SFTPNoSuchFile:
                return []
            return sorted(
                str(n.filename)
                for n in names
                if n.attrs.permissions is not None
                and stat.S_ISDIR(n.attrs.permissions)
                and n.filename not in (".", "..")
            )

        return await self._call(op, f"listing {path or '.'}")

    async def exists(self, path: str) -> bool:
        """Whether anything exists at ``path``."""
        return bool(await self._call(lambda s: s.lexists(self._p(path)), f"looking at {path}"))

    async def makedirs(self, path: str) -> None:
        """Create ``path`` and its parents."""
        await self._call(lambda s: s.makedirs(self._p(path), exist_ok=True), f"creating {path}")

    async def read(self, path: str) -> Download:
        """The bytes of ``path``, downloaded once in chunks, hashed as they arrive."""
        ssh = self._ssh

        async def op(sftp: Any) -> Download:
            digest = hashlib.sha256()
            chunks: list[bytes] = []
            try:
                async with sftp.open(self._p(path), "rb") as fh:
                    while chunk := await fh.read(CHUNK):
                        digest.update(chunk)
                        chunks.append(chunk)
            except ssh.SFTPNoSuchFile:
                raise InputError(f"{path} vanished from {self.display}") from None
            return Download(b"".join(chunks), digest.hexdigest())

        return await self._call(op, f"reading {path}")

    async def claim(self, src: str, dst: str) -> bool:
        """SFTP rename (fails when the source is gone, never replaces the target)."""
        ssh = self._ssh

        async def op(sftp: Any) -> bool:
            try:
                await sftp.rename(self._p(src), self._p(dst))
            except ssh.SFTPNoSuchFile:
                # Another watcher took it — or our own rename's answer was lost and it is
                # already where we asked (the target is this watcher's own folder).
                return bool(await sftp.lexists(self._p(dst)))
            return True

        return await self._call(op, f"claiming {src}")

    async def move_new(self, src: str, dst: str) -> bool:
        """SFTP rename; a target that exists is never replaced (False)."""
        ssh = self._ssh

        async def op(sftp: Any) -> bool:
            try:
                await sftp.rename(self._p(src), self._p(dst))
            except ssh.SFTPError:
                if not await sftp.lexists(self._p(dst)):
                    raise
                # The target exists: an earlier answer of that name — unless our source is
                # gone, when it was our own rename whose answer the dropped link lost.
                return not await sftp.lexists(self._p(src))
            return True

        return await self._call(op, f"moving {src}")

    async def write(self, path: str, data: bytes) -> None:
        """Write a temporary dot-file, then rename it over ``path``."""

        async def op(sftp: Any) -> None:
            tmp = self._p(temp_name(path))
            async with sftp.open(tmp, "wb") as fh:
                await fh.write(data)
            await self._replace(sftp, tmp, self._p(path))

        await self._call(op, f"writing {path}")

    async def upload(self, local: Path, path: str) -> None:
        """Stream ``local`` to a temporary dot-file, then rename it over ``path``."""

        async def op(sftp: Any) -> None:
            tmp = self._p(temp_name(path))
            await sftp.put(str(local), tmp)
            await self._replace(sftp, tmp, self._p(path))

        await self._call(op, f"uploading {path}")

    async def _replace(self, sftp: Any, tmp: str, final: str) -> None:
        ssh = self._ssh
        try:
            await sftp.posix_rename(tmp, final)
        except ssh.SFTPOpUnsupported:  # no posix-rename@openssh.com: remove, then rename
            with contextlib.suppress(ssh.SFTPNoSuchFile):
                await sftp.remove(final)
            await sftp.rename(tmp, final)

    async def remove(self, path: str) -> None:
        """Remove ``path`` if it exists."""
        ssh = self._ssh

        async def op(sftp: Any) -> None:
            with contextlib.suppress(ssh.SFTPNoSuchFile):
                await sftp.remove(self._p(path))

        await self._call(op, f"removing {path}")

    async def aclose(self) -> None:
        """Close the connection."""
        await self._drop()


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
