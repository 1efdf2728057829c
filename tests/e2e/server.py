"""A real sandbox server in its own process, for tests that need a socket."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from batchpay.sandbox import DEFAULT_API_KEY


def cli_env(home: Path, url: str, **extra: str) -> dict[str, str]:
    """The environment a `batchpay` process is started with against the sandbox at ``url``:
    this process's own, less any ``BATCHPAY_*``, with the sandbox key, ``url`` and ``home``
    (and ``extra`` settings, e.g. ``BATCHPAY_HTTP_TIMEOUT="60"``)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPAY_")}
    env.update(BATCHPAY_API_KEY=DEFAULT_API_KEY, BATCHPAY_API_URL=url, BATCHPAY_HOME=str(home))
    env.update(extra)
    return env


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """Handle on a running ``batchpay sandbox serve`` process."""

    def __init__(self, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.port = port
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"

    def admin(self, path: str) -> Any:
        """GET an admin route (``/_sandbox/...``) and decode it."""
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return json.loads(resp.read())

    def ledger(self) -> list[dict[str, Any]]:
        """Every payout the server created."""
        data = self.admin("/_sandbox/ledger")
        return list(data.get("data", data) if isinstance(data, dict) else data)


@contextmanager
def sandbox_server(tmp: Path, *args: str) -> Iterator[Server]:
    """Start the sandbox server with ``args``; stop it afterwards."""
    port = free_port()
    log = (tmp / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchpay.sandbox", "serve", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", *args],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    server = Server(port, proc)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                server.admin("/_sandbox/health")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("sandbox server did not start") from None
                time.sleep(0.05)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
