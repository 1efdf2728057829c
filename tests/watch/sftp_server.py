"""A real SFTP server on loopback: asyncssh's server, chrooted, on its own loop in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh


@dataclass
class SftpServer:
    """A running server: its port, root folder, the client's key and a known_hosts for it."""

    port: int
    root: Path
    key_file: Path
    known_hosts: Path
    host_key: asyncssh.SSHKey
    loop: asyncio.AbstractEventLoop
    connections: list[Any]

    @property
    def url(self) -> str:
        """The drop folder's URL (the chroot's top)."""
        return f"sftp://payer@127.0.0.1:{self.port}/"

    def drop_connections(self) -> None:
        """Close every client connection from the server's side (a dropped link)."""

        def close() -> None:
            for conn in self.connections:
                conn.abort()
            self.connections.clear()

        self.loop.call_soon_threadsafe(close)


def write_known_hosts(path: Path, port: int, key: asyncssh.SSHKey) -> Path:
    """A known_hosts file trusting ``key`` for 127.0.0.1:``port``."""
    line = f"[127.0.0.1]:{port} {key.export_public_key().decode().strip()}\n"
    path.write_text(line)
    return path


@contextmanager
def sftp_server(tmp: Path) -> Iterator[SftpServer]:
    """Start the server (public-key login as ``payer``); stop it afterwards."""
    root = tmp / "sftp-root"
    root.mkdir()
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_file = tmp / "id_ed25519"
    client_key.write_private_key(str(key_file))
    authorized = tmp / "authorized_keys"
    authorized.write_bytes(client_key.export_public_key())
    loop = asyncio.new_event_loop()
    connections: list[Any] = []
    started: Future[Any] = Future()

    def serve() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> Any:
            return await asyncssh.listen(
                "127.0.0.1", 0,
                server_host_keys=[host_key],
                authorized_client_keys=str(authorized),
                sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=bytes(root)),
                acceptor=connections.append,
                allow_scp=False,
            )  # fmt: skip

        try:
            started.set_result(loop.run_until_complete(start()))
        except BaseException as exc:  # pragma: no cover - reported to the test
            started.set_exception(exc)
            return
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    listener = started.result(timeout=20)
    port = int(listener.sockets[0].getsockname()[1])
    known = write_known_hosts(tmp / "known_hosts", port, host_key)
    try:
        yield SftpServer(port, root, key_file, known, host_key, loop, connections)
    finally:

        async def stop() -> None:
            listener.close()
            await listener.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
