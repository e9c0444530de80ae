"""The national benchmark's HTTP side: the gunicorn it measures, the clients that load it,
and the worker memory it reads.

Owns: starting and stopping `gunicorn -w 2 'consentsvc:create_app()'` of the tree whose
venv runs this file; the batch client (http.client, one keep-alive connection); the rate
runs (asyncio streams, closed loop for capacity, open loop on a fixed schedule for
latency); the sender processes of a million-recipient send (`python national_http.py
send …`, one process per client, so they run truly at once); VmRSS/VmHWM of the workers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHECK = "/api/v1/consent/check"
# A request that has not answered in this many seconds counts as an error (a time-out).
TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A gunicorn of the service with `workers` sync workers, configured by environment."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.log = log
        args = [
            sys.executable, "-m", "gunicorn", "-w", str(workers),
            "-b", f"127.0.0.1:{self.port}", "consentsvc:create_app()",
        ]  # fmt: skip
        # gunicorn puts its working directory first on sys.path: started in another
        # checkout, it would serve that checkout's consentsvc instead of the one this
        # Python imports. It starts in the imported tree's folder instead.
        tree = Path(importlib.util.find_spec("consentsvc").origin or ".").parent.parent
        with log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - the service's own server
                args, cwd=tree, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
            )
        self._wait_healthy(workers)

    def _wait_healthy(self, workers: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: see {self.log}")
            try:
                if get(self.port, "/healthz")[0] == 200 and len(self.workers()) == workers:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer /healthz: see {self.log}")

    def workers(self) -> list[int]:
        """The worker processes (children of the gunicorn master)."""
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        return [int(c) for c in children]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class BatchClient:
    """Posts consent checks one after another over one connection (reopened when the sync
    worker closes it, which gunicorn's sync workers do after every response)."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def check(self, body: bytes) -> tuple[int, float, bytes]:
        """Status, seconds from sending to the last byte of the answer, and the answer."""
        started = time.perf_counter()
        try:
            self.conn.request("POST", CHECK, body=body, headers=self.headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            raise
        took = time.perf_counter() - started
        if response.will_close:
            self.conn.close()
        return response.status, took, data

    def close(self) -> None:
        self.conn.close()


def check_body(recipients: Sequence[str], purpose: str = "newsletter") -> bytes:
    return json.dumps({"purpose": purpose, "recipients": list(recipients)}).encode()


# -- rate runs --------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RateResult:
    """What a rate run saw: latencies of the answered requests (seconds), statuses, errors."""

    offered: float | None  # requests per second on the schedule; None: closed loop
    seconds: float
    latencies: list[float]
    statuses: Counter[int]
    errors: int
    late_starts: int = 0  # sends that left more than 5 ms after their scheduled time
    client_cpu: float = 0.0  # CPU seconds of this client process during the run

    @property
    def answered(self) -> int:
        return len(self.latencies)

    def percentile(self, p: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def summary(self) -> dict[str, Any]:
        ok = sum(n for s, n in self.statuses.items() if 200 <= s < 400)
        return {
            "offered_per_s": self.offered,
            "seconds": round(self.seconds, 3),
            "requests": self.answered + self.errors_without_status(),
            "ok_per_s": round(ok / self.seconds, 1) if self.seconds else None,
            "p50_ms": _ms(self.percentile(50)),
            "p95_ms": _ms(self.percentile(95)),
            "p99_ms": _ms(self.percentile(99)),
            "max_ms": _ms(max(self.latencies) if self.latencies else None),
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "late_starts": self.late_starts,
            "client_cpu_us_per_request": round(
                self.client_cpu / max(1, len(self.latencies)) * 1e6, 1
            ),
        }

    def errors_without_status(self) -> int:
        return self.errors - sum(n for s, n in self.statuses.items() if not 200 <= s < 400)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


class _Pool:
    """Keep-alive connections to the server, opened as needed; one request at a time each."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def send(self, request: Request) -> int:
        if self.idle:
            reader, writer = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = [f"{request.method} {request.path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        head += [f"{k}: {v}" for k, v in request.headers.items()]
        head.append(f"Content-Length: {len(request.body)}")
        try:
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + request.body)
            status, keep = await _read_response(reader)
        except BaseException:
            writer.close()
            raise
        if keep:
            self.idle.append((reader, writer))
        else:
            writer.close()
        return status

    def close(self) -> None:
        for _reader, writer in self.idle:
            writer.close()
        self.idle.clear()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status and whether the connection stays open; reads the whole body."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close" and head[0].startswith("HTTP/1.1")
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.read()
        keep = False
    return status, keep


async def _closed_loop(
    port: int, requests: Callable[[int], Request], seconds: float, concurrency: int
) -> RateResult:
    result = RateResult(None, seconds, [], Counter(), 0)
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def worker() -> None:
        pool = _Pool(port)
        while time.perf_counter() < stop:
            await _one(pool, requests(next(counter)), time.perf_counter(), result)
        pool.close()

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    result.client_cpu = time.process_time() - cpu
    return result


async def _open_loop(
    port: int, requests: Callable[[int], Request], seconds: float, rate: float
) -> RateResult:
    result = RateResult(rate, seconds, [], Counter(), 0)
    pool = _Pool(port)
    loop = asyncio.get_running_loop()
    total = int(seconds * rate)
    tasks = []
    cpu = time.process_time()
    start = loop.time() + 0.05
    started = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            result.late_starts += 1
        # Latency counts from the scheduled time, so a queue in front of the server (or in
        # this client) shows up in it instead of slowing the schedule down.
        scheduled = started + i / rate
        tasks.append(asyncio.create_task(_one(pool, requests(i), scheduled, result)))
    await asyncio.gather(*tasks)
    result.seconds = time.perf_counter() - started
    result.client_cpu = time.process_time() - cpu
    pool.close()
    return result


async def _one(pool: _Pool, request: Request, scheduled: float, result: RateResult) -> None:
    try:
        # asyncio.timeout rather than wait_for: no extra task per request (client overhead).
        async with asyncio.timeout(TIMEOUT):
            status = await pool.send(request)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        result.errors += 1
        return
    result.latencies.append(time.perf_counter() - scheduled)
    result.statuses[status] += 1
    if not 200 <= status < 400:
        result.errors += 1


def closed_loop(
    port: int, requests: Callable[[int], Request], seconds: float, concurrency: int = 8
) -> RateResult:
    """As many requests as the server takes, `concurrency` in flight at all times."""
    with _no_collection():
        return asyncio.run(_closed_loop(port, requests, seconds, concurrency))


def open_loop(
    port: int, requests: Callable[[int], Request], seconds: float, rate: float
) -> RateResult:
    """`rate` requests a second on a fixed schedule, whether or not earlier ones answered."""
    with _no_collection():
        return asyncio.run(_open_loop(port, requests, seconds, rate))


@contextmanager
def _no_collection() -> Iterator[None]:
    # The calling process holds a million addresses and their tokens: a full collection in
    # the middle of a rate run would stall the schedule for tens of milliseconds and be
    # counted as the server's latency. A run of seconds makes little garbage.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


# -- a million-recipient send -----------------------------------------------------------------


def send_command(port: int, key: str, people: int, part: int, parts: int) -> list[str]:
    return [
        sys.executable, str(Path(__file__).resolve()), "send", "--port", str(port),
        "--key", key, "--people", str(people), "--part", str(part), "--parts", str(parts),
    ]  # fmt: skip


def run_send(port: int, key: str, people: int, clients: int) -> dict[str, Any]:
    """The whole list of seeded people, in checks of 10,000, split over `clients` sender
    processes that start together; wall time from the start to the last answer."""
    senders = [
        subprocess.Popen(  # noqa: S603 - this file
            send_command(port, key, people, part, clients),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for part in range(clients)
    ]
    for sender in senders:
        assert sender.stdout is not None
        assert sender.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for sender in senders:
        assert sender.stdin is not None
        sender.stdin.write("go\n")
        sender.stdin.flush()
    reports = []
    for sender in senders:
        out, _ = sender.communicate(timeout=1800)
        reports.append(json.loads(out))
    wall = time.perf_counter() - started
    failures = [f for r in reports for f in r["failures"]]
    return {
        "clients": clients,
        "recipients": sum(r["recipients"] for r in reports),
        "checks": sum(r["checks"] for r in reports),
        "wall_s": round(wall, 3),
        "client_wall_s": [r["wall_s"] for r in reports],
        "non_200": len(failures),
        "failures": failures[:20],
        "allowed": sum(r["allowed"] for r in reports),
    }


def _sender(args: argparse.Namespace) -> None:
    """One sender: its share of the list, one check of 10,000 after the other."""
    numbers = list(range(1 + args.part, args.people + 1, args.parts))
    bodies = [
        check_body([f"reader{n}@example.nl" for n in numbers[i : i + 10_000]])
        for i in range(0, len(numbers), 10_000)
    ]
    client = BatchClient(args.port, args.key)
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    failures, allowed = [], 0
    for body in bodies:
        try:
            status, _took, data = client.check(body)
        except (OSError, http.client.HTTPException) as error:
            failures.append({"status": None, "error": repr(error)[:200]})
            continue
        if status != 200:
            failures.append({"status": status, "body": data[:200].decode("utf-8", "replace")})
        else:
            allowed += data.count(b'"allowed":true') + data.count(b'"allowed": true')
    wall = time.perf_counter() - started
    client.close()
    report = {
        "recipients": len(numbers),
        "checks": len(bodies),
        "wall_s": round(wall, 3),
        "failures": failures,
        "allowed": allowed,
    }
    print(json.dumps(report), flush=True)


# -- the client alone ------------------------------------------------------------------------

STUB_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\n{}"
)


async def _stub(port: int) -> None:
    """Answers every request at once, closing the connection as gunicorn's sync workers do:
    what the rate clients reach against it is their own limit, not the service's."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        writer.write(STUB_ANSWER)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def client_alone(seconds: float, rate: float, request: Request) -> dict[str, Any]:
    """The rate clients against the stub server (in its own process): their capacity and
    the latency they add at `rate`."""
    port = free_port()
    stub = subprocess.Popen(  # noqa: S603 - this file
        [sys.executable, str(Path(__file__).resolve()), "stub", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stub.stdout is not None
        assert stub.stdout.readline().strip() == "ready"
        capacity = closed_loop(port, lambda _i: request, seconds, 8).summary()
        steady = open_loop(port, lambda _i: request, seconds, rate).summary()
    finally:
        stub.terminate()
        stub.wait()
    return {"capacity": capacity, "open_loop": steady}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="a helper process of bench/national.py")
    parser.add_argument("command", choices=["send", "stub"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key")
    parser.add_argument("--people", type=int)
    parser.add_argument("--part", type=int, default=0)
    parser.add_argument("--parts", type=int, default=1)
    arguments = parser.parse_args()
    if arguments.command == "stub":
        asyncio.run(_stub(arguments.port))
    else:
        _sender(arguments)
