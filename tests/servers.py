"""Real servers for the tests that need one: a free local port, and the service under
gunicorn, as in production, started and waited for until /healthz answers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import httpx

GUNICORN = (Path(sys.executable).parent / "gunicorn",)


class Served(NamedTuple):
    port: int
    url: str  # http://127.0.0.1:<port>
    process: subprocess.Popen

    def kill(self) -> None:
        """Kill the arbiter and its workers at once, as a host that dies (new_session)."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)


def free_port() -> int:
    """A port nothing listens on now (the OS picks it; another process may take it later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def gunicorn(
    *options: str | Path,
    env: dict[str, str],
    log: Path,
    port: int | None = None,
    command: Sequence[str | Path] = GUNICORN,
    cwd: Path | None = None,
    explains: Path | None = None,
    new_session: bool = False,
) -> Iterator[Served]:
    """`gunicorn <options> -b 127.0.0.1:<port> consentsvc:create_app()` with stdout and
    stderr in log; yields once /healthz answers 200 and stops it afterwards. With
    new_session it runs in a process group of its own, which Served.kill ends.

    A gunicorn that exits before it answers fails the test with the text of explains (its
    --error-logfile, if it has one) or else of log. What the logs hold afterwards (a
    traceback, a line the test expects) is for the caller to check.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    args = [*command, *options, "-b", f"127.0.0.1:{port}", "consentsvc:create_app()"]
    with log.open("wb") as out:
        server = subprocess.Popen(  # noqa: S603 - the project's own command
            args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )  # fmt: skip
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            assert server.poll() is None, (explains or log).read_text()
            time.sleep(0.05)
        yield Served(port, url, server)
    finally:
        server.terminate()
        server.wait(timeout=30)
