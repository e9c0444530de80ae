"""Can an outsider tell by timing whether an address is known? Prints, per endpoint and
database, the median and 90th percentile in ms per kind of address, and the AUC: the chance
that a random request for a known address (or existing staff account) takes longer than a
random one for an unknown address. 0.5 means the timings tell nothing.

    .venv/bin/python bench/enumeration.py                    # SQLite and PostgreSQL, 250 each
    .venv/bin/python bench/enumeration.py -n 100 --database sqlite

Each run starts gunicorn (2 workers, on a free loopback port, rate limits off) on a fresh
database of its own: a SQLite file in a temporary folder, and a PostgreSQL database
(`test_enumeration_bench` by default) that is created and dropped again. Requests go one
at a time, all endpoints and kinds of address shuffled together, so load on the machine
falls on every kind alike. The run stops after --max-minutes even if not done.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from argon2 import PasswordHasher
from sqlalchemy import insert, select

from consentsvc import clients, create_app, ledger
from consentsvc.extensions import db
from consentsvc.models import Library, StaffRole, StaffUser, utcnow

BIN = Path(sys.executable).parent
ORIGIN = "http://127.0.0.1:8000"  # an allowed origin of the demo libraries
PASSWORD = "the-right-password-0123"  # noqa: S105 - throwaway accounts of the run
ENDPOINTS = ("web signup", "mail me my link", "/api/v1/signups", "/admin/login")
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test_enumeration_bench"


@dataclass(frozen=True)
class Probe:
    endpoint: str
    kind: str  # "unknown", or the kind of known address / account
    send: Callable[[httpx.Client], httpx.Response]
    expect: int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=250, help="per endpoint and kind")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help="created and dropped")
    parser.add_argument("--max-minutes", type=float, default=30.0, help="stop after this long")
    parser.add_argument("--seed", type=int, default=None, help="for the shuffle")
    args = parser.parse_args()
    deadline = time.monotonic() + args.max_minutes * 60
    rng = random.Random(args.seed)
    tables = []
    if args.database in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'bench.sqlite'}"
            tables.append(("sqlite", run(url, Path(folder), args.requests, rng, deadline)))
    if args.database in ("postgresql", "both"):
        with fresh_postgres(args.postgres_url), tempfile.TemporaryDirectory() as folder:
            tables.append(
                ("postgresql", run(args.postgres_url, Path(folder), args.requests, rng, deadline))
            )
    for name, timings in tables:
        print_table(name, timings)


# -- one database -------------------------------------------------------------------------------


def run(
    url: str, folder: Path, n: int, rng: random.Random, deadline: float
) -> dict[tuple[str, str], list[float]]:
    env = {
        **os.environ,
        "CONSENTSVC_DATABASE_URL": url,
        "CONSENTSVC_SECRET_KEY": "bench-secret-key-" + "x" * 32,
        "CONSENTSVC_SUPPRESSION_KEY": "bench-suppression-key",
        "CONSENTSVC_RATELIMIT_ENABLED": "false",
        "CONSENTSVC_MAIL_DIR": str(folder / "mail"),
        "FLASK_DEBUG": "0",
    }
    for command in (["db", "upgrade"], ["demo"]):
        subprocess.run(  # noqa: S603 - the project's own command
            [BIN / "consentsvc", *command], env=env, check=True, capture_output=True, timeout=300
        )
    key, people = prepare(url, n)
    print(f"{dialect(url)}: {len(people['confirmed']) * 2 + len(people['wrong_password'])} "
          "known addresses and accounts ready", file=sys.stderr)  # fmt: skip
    probes = make_probes(key, people, n)
    rng.shuffle(probes)
    timings: dict[tuple[str, str], list[float]] = defaultdict(list)
    with serve(env, folder) as base, httpx.Client(base_url=base, timeout=30) as client:
        client.headers["User-Agent"] = "consentsvc-bench/1"
        csrf = _csrf_token(client, "/borne/preferences")
        client.headers["X-CSRFToken"] = csrf
        for probe in probes[:10]:  # warm up each worker: first requests import and connect
            probe.send(client)
        for done, probe in enumerate(probes, 1):
            if time.monotonic() > deadline:
                print(f"time is up after {done - 1} requests", file=sys.stderr)
                break
            started = time.perf_counter()
            response = probe.send(client)
            took = time.perf_counter() - started
            if response.status_code != probe.expect:
                raise SystemExit(
                    f"{probe.endpoint} ({probe.kind}): {response.status_code}, "
                    f"expected {probe.expect}: {response.text[:300]}"
                )
            timings[(probe.endpoint, probe.kind)].append(took * 1000)
            if done % 250 == 0:
                print(f"  {done}/{len(probes)}", file=sys.stderr)
    return timings


def prepare(url: str, n: int) -> tuple[str, dict[str, list[str]]]:
    """Known members (confirmed and pending), an API key and staff accounts."""
    app = create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench-secret-key-" + "x" * 32,
            "SUPPRESSION_KEY": "bench-suppression-key",
        }
    )
    people: dict[str, list[str]] = {"confirmed": [], "pending": [], "wrong_password": []}
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        # Each known address is used once per endpoint: three endpoints take it.
        for number in range(3 * n // 2 + 3):
            for kind in ("confirmed", "pending"):
                email = f"bekend.{kind}{number}@example.nl"
                result = ledger.signup(
                    db.session, library, email, ["newsletter"],
                    language="nl", channel=ledger.Channel.WEB_FORM, proof=ledger.Proof(),
                )  # fmt: skip
                if kind == "confirmed":
                    ledger.confirm(db.session, result.subject, result.request_ids)
                people[kind].append(email)
            db.session.commit()
        _client, key = clients.create(db.session, library, "bench", ["newsletter"])
        # One hash for every account: hashing each would take a minute.
        password_hash = PasswordHasher().hash(PASSWORD)
        accounts = [
            {"email": f"medewerker{number}@bibliotheek.example.nl", "kind": "wrong_password"}
            for number in range(n)
        ] + [
            {"email": "op-slot@bibliotheek.example.nl", "kind": "locked"},
        ]
        locked_until = utcnow() + timedelta(days=1)
        db.session.execute(
            insert(StaffUser),
            [
                {"library_id": library.id, "email": a["email"], "name": "Bench",
                 "role": StaffRole.DESK, "password_hash": password_hash, "active": True,
                 "failed_logins": 0,
                 "locked_until": locked_until if a["kind"] == "locked" else None}
                for a in accounts
            ],
        )  # fmt: skip
        db.session.commit()
        people["wrong_password"] = [a["email"] for a in accounts if a["kind"] == "wrong_password"]
        db.session.remove()
        db.engine.dispose()
    return key, people


def make_probes(key: str, people: dict[str, list[str]], n: int) -> list[Probe]:
    """n requests per endpoint and kind; every unknown address is new, every known one used once
    per endpoint."""
    probes = []
    stamp = f"{time.time_ns():x}"

    def addresses(endpoint: str, kind: str) -> Iterator[str]:
        if kind == "unknown":
            return (f"onbekend.{endpoint}.{stamp}.{i}@example.nl" for i in range(n))
        pool = people[kind]
        offset = {"signup": 0, "link": 1, "api": 2}[endpoint] * (len(pool) // 3)
        return iter(pool[offset : offset + n])

    for kind in ("unknown", "confirmed", "pending"):
        # Known addresses are split over the two known kinds: n known against n unknown.
        count = n if kind == "unknown" else (n + (kind == "confirmed")) // 2
        signup = addresses("signup", kind)
        link = addresses("link", kind)
        api = addresses("api", kind)
        for _ in range(count):
            probes.append(Probe("web signup", kind, _web_signup(next(signup)), 200))
            probes.append(Probe("mail me my link", kind, _link_request(next(link)), 200))
            probes.append(Probe("/api/v1/signups", kind, _api_signup(key, next(api)), 202))
    wrong = iter(people["wrong_password"])
    for number in range(n):
        unknown = f"niemand{number}.{stamp}@bibliotheek.example.nl"
        probes.append(Probe("/admin/login", "unknown", _login(unknown), 401))
        probes.append(
            Probe("/admin/login", "locked", _login("op-slot@bibliotheek.example.nl"), 401)
        )
        probes.append(Probe("/admin/login", "wrong_password", _login(next(wrong)), 401))
    return probes


def _web_signup(email: str) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.post(
        "/borne/signup", data={"email": email, "purpose": "newsletter"}, headers={"Origin": ORIGIN}
    )


def _link_request(email: str) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.post(
        "/borne/preferences",
        data={"email": email, "csrf_token": client.headers["X-CSRFToken"]},
    )


def _api_signup(key: str, email: str) -> Callable[[httpx.Client], httpx.Response]:
    body = {
        "email": email,
        "purposes": ["newsletter"],
        "evidence": {"ip_address": "192.0.2.7", "user_agent": "bench", "page_url": ORIGIN},
    }
    return lambda client: client.post(
        "/api/v1/signups", json=body, headers={"Authorization": f"Bearer {key}"}
    )


def _login(email: str) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.post(
        "/admin/login",
        data={
            "email": email,
            "password": "not-the-password-9876",
            "csrf_token": client.headers["X-CSRFToken"],
        },
    )


def _csrf_token(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    if found is None:
        raise SystemExit(f"no CSRF token on {path}: {page.status_code}")
    return found.group(1)


# -- the server and the database ------------------------------------------------------------------


@contextmanager
def serve(env: dict[str, str], folder: Path) -> Iterator[str]:
    """gunicorn with two workers on a free loopback port, stopped on the way out."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    log_path = folder / "gunicorn.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(  # noqa: S603 - the project's own server
            [BIN / "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "consentsvc:create_app()"],
            env={**env, "CONSENTSVC_BASE_URL": base},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        for _ in range(300):
            with suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            if server.poll() is not None:
                raise SystemExit(f"gunicorn stopped:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextmanager
def fresh_postgres(url: str) -> Iterator[None]:
    """Create the named database (dropping a leftover first), and drop it afterwards."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"not a plain database name: {name!r}")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")
    try:
        yield
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def dialect(url: str) -> str:
    return url.split(":", 1)[0]


# -- numbers ------------------------------------------------------------------------------------


def auc(known: list[float], unknown: list[float]) -> float:
    """P(a random known timing > a random unknown one), ties counting half (Mann-Whitney U)."""
    ranked = sorted([(t, 1) for t in known] + [(t, 0) for t in unknown])
    rank_sum, position = 0.0, 0
    while position < len(ranked):
        end = position
        while end < len(ranked) and ranked[end][0] == ranked[position][0]:
            end += 1
        mean_rank = (position + 1 + end) / 2
        rank_sum += mean_rank * sum(flag for _t, flag in ranked[position:end])
        position = end
    n_known = len(known)
    return (rank_sum - n_known * (n_known + 1) / 2) / (n_known * len(unknown))


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def print_table(database: str, timings: dict[tuple[str, str], list[float]]) -> None:
    print(f"\n{database}")
    print(f"  {'endpoint':<18} {'kind':<15} {'n':>4} {'median ms':>10} {'p90 ms':>8} {'AUC':>6}")
    for endpoint in ENDPOINTS:
        unknown = timings.get((endpoint, "unknown"), [])
        kinds = [kind for e, kind in timings if e == endpoint and kind != "unknown"]
        rows: list[tuple[str, list[float], str]] = [("unknown", unknown, "")]
        for kind in kinds:
            rows.append(
                (kind, timings[(endpoint, kind)], _auc_text(timings[(endpoint, kind)], unknown))
            )
        if endpoint != "/admin/login" and len(kinds) > 1:
            known = [t for kind in kinds for t in timings[(endpoint, kind)]]
            rows.append(("known (all)", known, _auc_text(known, unknown)))
        for kind, values, shown_auc in rows:
            if len(values) < 2:
                continue
            print(
                f"  {endpoint:<18} {kind:<15} {len(values):>4} "
                f"{statistics.median(values):>10.1f} {p90(values):>8.1f} {shown_auc:>6}"
            )


def _auc_text(known: list[float], unknown: list[float]) -> str:
    return f"{auc(known, unknown):.2f}" if known and unknown else ""


if __name__ == "__main__":
    main()
