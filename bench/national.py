"""The national benchmark of issue 13: one command that measures the consent check, a
million-recipient send, single checks, the preference centre and one-click unsubscribes
against a million seeded people, on SQLite and PostgreSQL, side by side.

    .venv/bin/python bench/national.py                      # both databases, 1,000,000 people
    .venv/bin/python bench/national.py --quick              # 100,000 people, 3 rounds, 5 s runs
    .venv/bin/python bench/national.py --database sqlite --rounds 3

Owns: the order of a run (rounds interleave every measurement so a load spike hits all
alike), the medians, the ratios to the raw-driver ceiling, the targets, the table and the
JSON file in bench/results/. What is seeded and what the ceiling asks is national_db.py;
the server and the clients are national_http.py. docs/performance.md explains each row.

Run it with the venv of the tree you want to measure: consentsvc is imported from that
venv and gunicorn runs from it, whichever checkout these bench files are in.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import national_db as ndb
import national_http as nhttp
from bench_app import SUPPRESSION_KEY, bench_app
from sqlalchemy import select

import consentsvc
from consentsvc import clients, ledger, tokens
from consentsvc.extensions import db
from consentsvc.models import Library

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# Outside the checkout and outside /tmp, so a reboot or `git clean` does not cost a reseed.
DEFAULT_SQLITE = os.environ.get(
    "CONSENTSVC_BENCH_SQLITE",
    "/var/tmp/consentsvc-bench/national.sqlite",  # noqa: S108 - a cache, not a secret
)
DEFAULT_POSTGRESQL = os.environ.get(
    "CONSENTSVC_BENCH_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/consentsvc_bench"
)
# The service's configuration for measuring, the same for this process and for gunicorn:
# no rate limits, fixed keys (published ones would be refused: BASE_URL is not local).
CONFIG = {
    "SECRET_KEY": "benchmark-secret-key-0123456789abcdef",
    "SUPPRESSION_KEY": SUPPRESSION_KEY,
    "IBAN_KEY": "YmVuY2htYXJrLWliYW4ta2V5LW5vdC1mb3ItdXNlLTA=",
    "SIGNING_KEY": "YmVuY2htYXJrLXNpZ25pbmcta2V5LW5vdC1mb3ItdXM=",
    "RATELIMIT_ENABLED": False,
    "BASE_URL": "https://toestemming.bibliotheek.example",
    "RETENTION_TIME": "off",
}
SINGLE_RATE = 200.0
PAGE_RATE = 100.0
# Closed-loop capacity: this many requests in flight (a few per worker, so a worker never
# waits for the client).
CONCURRENCY = 8


@dataclass(frozen=True)
class Options:
    databases: list[str]
    people: int
    rounds: int
    send_rounds: int
    seconds: float
    sqlite: str
    postgresql: str
    quick: bool


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--markdown":
        print(markdown(json.loads(Path(sys.argv[2]).read_text())))
        return
    options = parse()
    RESULTS.mkdir(exist_ok=True)
    started = datetime.now(UTC)
    machine = machine_info()
    print(f"machine: {machine['cpu']} ×{machine['nproc']}, load {machine['load_before']}")
    print(f"consentsvc from {machine['consentsvc_tree']} ({machine['consentsvc_commit']})")
    # What the load client reaches on its own (against a stub server): the rate runs below
    # mean something only well under this.
    probe = nhttp.Request("POST", nhttp.CHECK, nhttp.check_body(["a@example.nl"]), {})
    alone = nhttp.client_alone(min(options.seconds, 5.0), SINGLE_RATE, probe)
    print(
        f"client alone: {alone['capacity']['ok_per_s']}/s closed loop, p99 at"
        f" {SINGLE_RATE:.0f}/s {alone['open_loop']['p99_ms']} ms"
    )
    steal = cpu_times()
    results = {}
    for name in options.databases:
        url = (
            ndb.sqlite_for(options.sqlite, options.people)
            if name == "sqlite"
            else ndb.in_schema(options.postgresql, options.people)
        )
        print(f"\n== {name}")
        results[name] = run_database(name, url, options)
    machine["load_after"] = [round(x, 2) for x in os.getloadavg()]
    machine["cpu_during_run"] = cpu_share(steal, cpu_times())
    report = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "options": options.__dict__,
        "machine": machine,
        "client_alone": alone,
        "databases": results,
    }
    out = RESULTS / f"national-{started:%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    for name, result in results.items():
        print_table(name, result, options)
    print(
        f"\nclient alone: {alone['capacity']['ok_per_s']}/s,"
        f" p99 at {SINGLE_RATE:.0f}/s {alone['open_loop']['p99_ms']} ms"
    )
    print(f"load average before {machine['load_before']}, after {machine['load_after']}")
    print(f"machine's CPU during the run: {machine['cpu_during_run']}")
    print(f"written: {out}")


def parse() -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--people", type=int, help="seeded people (1,000,000; quick 100,000)")
    parser.add_argument("--rounds", type=int, help="rounds of every measurement (5; quick 3)")
    parser.add_argument(
        "--send-rounds", type=int, help="rounds that also make the big sends (3; quick 2)"
    )
    parser.add_argument("--seconds", type=float, help="length of each rate run (10; quick 5)")
    parser.add_argument("--quick", action="store_true", help="a before/after in a few minutes")
    parser.add_argument("--sqlite-path", default=DEFAULT_SQLITE)
    parser.add_argument("--postgresql-url", default=DEFAULT_POSTGRESQL)
    args = parser.parse_args()
    quick = args.quick
    rounds = args.rounds or (3 if quick else 5)
    return Options(
        databases=["sqlite", "postgresql"] if args.database == "both" else [args.database],
        people=args.people or (100_000 if quick else 1_000_000),
        rounds=rounds,
        send_rounds=min(
            rounds, args.send_rounds if args.send_rounds is not None else (2 if quick else 3)
        ),
        seconds=args.seconds or (5.0 if quick else 10.0),
        sqlite=args.sqlite_path,
        postgresql=args.postgresql_url,
        quick=quick,
    )


def machine_info() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    tree = Path(consentsvc.__file__).resolve().parent.parent
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(int(memory) / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "consentsvc_tree": str(tree),
        "consentsvc_commit": _git(tree, "consentsvc"),
        "bench_commit": _git(HERE, "bench"),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def cpu_times() -> list[int]:
    """The machine's CPU counters (user nice system idle iowait irq softirq steal)."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]


def cpu_share(before: list[int], after: list[int]) -> dict[str, float]:
    """Where the machine's CPU time went between two readings, in percent: steal is time
    the hypervisor gave to other guests."""
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta) or 1
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {n: round(100 * d / total, 1) for n, d in zip(names, delta, strict=True)}


def _git(where: Path, part: str) -> str:
    """The commit of the checkout, and whether `part` of it (consentsvc/, bench/) differs
    from that commit: the service measured is what is on disk, not what is committed."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - the developer's git
            cwd=where, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        changed = subprocess.run(  # noqa: S603 - a fixed git command
            ["git", "status", "--porcelain", "--", part],  # noqa: S607
            cwd=where.parent if where.name == part else where,
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} with uncommitted changes in {part}/" if changed else head


# -- one database -----------------------------------------------------------------------------


def run_database(name: str, url: str, options: Options) -> dict[str, Any]:
    """Seed (or reuse), start gunicorn, measure every round, stop; the figures."""
    app = bench_app(url, **{k: v for k, v in CONFIG.items() if k != "BASE_URL"})
    marker = ndb.ensure_seeded(app, url, options.people, SUPPRESSION_KEY)
    raw = ndb.Raw(url)
    ndb.forget_decisions(raw)
    clicks_needed = int(PAGE_RATE * options.seconds * options.rounds) * 2 + 100
    pools = ndb.read_pools(raw, marker)
    if len(pools.click_ids) < clicks_needed:
        print(f"  re-granting the click pool ({ndb.regrant_clicked(raw, marker):,} people)")
        pools = ndb.read_pools(raw, marker)
    if len(pools.click_ids) < clicks_needed:
        raise SystemExit(f"only {len(pools.click_ids)} people to unsubscribe: more --people")
    context = app.app_context()
    context.push()
    library = db.session.scalar(select(Library).where(Library.slug == ndb.LIBRARY))
    assert library is not None
    _client, key = clients.create(db.session, library, "national bench", [ndb.PURPOSE])
    db.session.commit()
    random.Random(5).shuffle(pools.click_ids)
    # Each round's rate run takes PAGE_RATE * seconds of these; its capacity run shares
    # out the rest (up to three times as many), so every one-click measured withdraws.
    click_tokens = tokens.make_many_unsubscribe(
        [(sid, marker.purpose_id) for sid in pools.click_ids[: clicks_needed * 2]]
    )
    page_people = random.Random(6).sample(range(1, marker.people + 1), clicks_needed)
    page_tokens = tokens.make_many_preferences([marker.subject_base + n for n in page_people])
    env = {f"CONSENTSVC_{k}": _env(v) for k, v in CONFIG.items()}
    env["CONSENTSVC_DATABASE_URL"] = url
    log = RESULTS / f"gunicorn-{name}.log"
    log.write_text("")
    server = nhttp.Server(env, log)
    try:
        rss = measure_rss(server, key, pools)
        # Warm this process's own code paths too, so round 1 is not the one that pays for
        # the first import and the first statement of each kind.
        ledger.check_many(
            db.session, library, ndb.PURPOSE, pools.granted[:1000], suppression_key=SUPPRESSION_KEY
        )
        db.session.rollback()
        print(f"  worker memory for a 10,000 check: +{rss['extra_mb']:.1f} MB")
        rounds = []
        for r in range(options.rounds):
            rounds.append(
                one_round(
                    r, raw, marker, library, pools, server.port, key, options,
                    clicks=click_tokens, pages=page_tokens,
                )
            )  # fmt: skip
    finally:
        server.stop()
        db.session.rollback()
        context.pop()
        raw.close()
    return {
        "url": url if name == "postgresql" else ndb.sqlite_path(url),
        "people": marker.people,
        "rss": rss,
        "rounds": rounds,
        "figures": figures(rounds, rss, options),
    }


def _env(value: Any) -> str:
    # from_prefixed_env reads JSON: false stays a bool, a plain string stays a string.
    return json.dumps(value) if isinstance(value, bool | int | float) else str(value)


def measure_rss(server: nhttp.Server, key: str, pools: ndb.Pools) -> dict[str, Any]:
    """Extra memory of a worker for a 10,000 check: both workers warmed with small checks,
    VmRSS read, then two 10,000 checks at once (one per worker, most likely) while VmRSS is
    sampled; extra = the peak (VmHWM after, and the samples) minus VmRSS before."""
    small = nhttp.check_body(pools.granted[:1])
    for _ in range(20):
        client = nhttp.BatchClient(server.port, key)
        client.check(small)
        client.close()
    workers = server.workers()
    before = {pid: nhttp.memory_kb(pid) for pid in workers}
    peak = {pid: before[pid]["VmRSS"] for pid in workers}
    body = nhttp.check_body(random.Random(9).sample(pools.granted, 10_000))
    statuses: list[int] = []

    def post() -> None:
        client = nhttp.BatchClient(server.port, key)
        statuses.append(client.check(body)[0])
        client.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for pid in workers:
            peak[pid] = max(peak[pid], nhttp.memory_kb(pid)["VmRSS"])
        time.sleep(0.005)
    after = {pid: nhttp.memory_kb(pid) for pid in workers}
    extra = {pid: max(peak[pid], after[pid]["VmHWM"]) - before[pid]["VmRSS"] for pid in workers}
    return {
        "statuses": statuses,
        "before_kb": {str(p): v for p, v in before.items()},
        "after_kb": {str(p): v for p, v in after.items()},
        "extra_kb": {str(p): v for p, v in extra.items()},
        "extra_mb": round(max(extra.values()) / 1024, 1),
    }


def batch(rng: random.Random, pools: ndb.Pools, mix: str, size: int) -> list[str]:
    """Mostly granted: drawn from granted people (outside the click pool; ~1 % of them are
    suppressed). Mostly unknown: 90 % addresses of nobody, 10 % drawn from all people."""
    if mix == "granted":
        return rng.sample(pools.granted, size)
    known = size // 10
    emails = [ndb.email_of(rng.randint(1, pools.everyone)) for _ in range(known)]
    emails += [ndb.nobody(rng.randrange(10**9)) for _ in range(size - known)]
    rng.shuffle(emails)
    return emails


def one_round(
    r: int,
    raw: ndb.Raw,
    marker: ndb.Marker,
    library: Library,
    pools: ndb.Pools,
    port: int,
    key: str,
    options: Options,
    *,
    clicks: list[str],
    pages: list[str],
) -> dict[str, Any]:
    """Every measurement once, in the same order each round."""
    rng = random.Random(1000 + r)
    queries = ndb.ceiling_queries(raw, marker)
    out: dict[str, Any] = {"round": r + 1, "batches": {}}
    client = nhttp.BatchClient(port, key)
    for size in (10_000, 1_000):
        for mix in ("granted", "unknown"):
            emails = batch(rng, pools, mix, size)
            wanted = sorted(set(emails))
            hashes = [ledger.email_hmac(SUPPRESSION_KEY, e) for e in wanted]
            ceiling = {}
            for label, query in queries.items():
                started = time.perf_counter()
                rows = query(wanted, hashes)
                ceiling[label] = time.perf_counter() - started
            started = time.perf_counter()
            decisions = ledger.check_many(
                db.session, library, ndb.PURPOSE, emails, suppression_key=SUPPRESSION_KEY
            )
            in_process = time.perf_counter() - started
            db.session.rollback()
            body = nhttp.check_body(emails)
            status, over_http, _data = client.check(body)
            out["batches"][f"{mix}-{size}"] = {
                "ceiling_s": ceiling,
                "ceiling_rows": rows,
                "check_many_s": in_process,
                "http_s": over_http,
                "http_status": status,
                "allowed": sum(d.allowed for d in decisions),
            }
    client.close()
    print(
        f"  round {r + 1}: 10k granted {out['batches']['granted-10000']['http_s'] * 1000:.0f} ms,"
        f" unknown {out['batches']['unknown-10000']['http_s'] * 1000:.0f} ms",
        flush=True,
    )
    singles = [
        nhttp.Request("POST", nhttp.CHECK, nhttp.check_body([email]), _api_headers(key))
        for email in rng.sample(pools.granted, 5000)
    ]

    def single(i: int) -> nhttp.Request:
        return singles[i % len(singles)]

    seconds = options.seconds
    # The floor: what this machine serves of a request that does next to nothing (Flask,
    # the service's request hooks, one SELECT 1), so the capacities below can be read
    # against what the machine allows at all.
    floor = nhttp.Request("GET", "/healthz")
    out["floor"] = nhttp.closed_loop(port, lambda _i: floor, seconds, CONCURRENCY).summary()
    out["capacity"] = nhttp.closed_loop(port, single, seconds, CONCURRENCY).summary()
    out["single_200"] = nhttp.open_loop(port, single, seconds, SINGLE_RATE).summary()
    per_round = int(PAGE_RATE * seconds)
    mine = slice(r * per_round, (r + 1) * per_round)
    out["preferences"] = nhttp.open_loop(port, _pages(pages[mine]), seconds, PAGE_RATE).summary()
    out["one_click"] = nhttp.open_loop(port, _clicks(clicks[mine]), seconds, PAGE_RATE).summary()
    # The one-clicks the service can take at all: the rate run above passes only well under.
    # Should it take more than its share, the last ones click an unsubscribed link again.
    spare = clicks[options.rounds * per_round :]
    share = len(spare) // options.rounds
    theirs = spare[r * share : (r + 1) * share]
    out["one_click_capacity"] = nhttp.closed_loop(
        port, _clicks(theirs), seconds, CONCURRENCY
    ).summary()
    print(
        f"    capacity {out['capacity']['ok_per_s']}/s, single p99 {out['single_200']['p99_ms']}"
        f" ms, preferences p99 {out['preferences']['p99_ms']} ms, one-click p99"
        f" {out['one_click']['p99_ms']} ms",
        flush=True,
    )
    if r < options.send_rounds:
        out["send_1"] = nhttp.run_send(port, key, pools.everyone, 1)
        out["send_2"] = nhttp.run_send(port, key, pools.everyone, 2)
        print(
            f"    send {pools.everyone:,}: one client {out['send_1']['wall_s']:.1f} s,"
            f" two {out['send_2']['wall_s']:.1f} s ({out['send_2']['non_200']} non-200)",
            flush=True,
        )
    return out


def _api_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def _pages(page_tokens: list[str]) -> Callable[[int], nhttp.Request]:
    def request(i: int) -> nhttp.Request:
        return nhttp.Request("GET", f"/preferences/{page_tokens[i]}")

    return request


def _clicks(click_tokens: list[str]) -> Callable[[int], nhttp.Request]:
    body = b"List-Unsubscribe=One-Click"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    def request(i: int) -> nhttp.Request:
        token = click_tokens[i % len(click_tokens)]
        return nhttp.Request("POST", f"/unsubscribe/{token}", body, headers)

    return request


# -- figures ----------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values)


def figures(rounds: list[dict[str, Any]], rss: dict[str, Any], options: Options) -> list[dict]:
    """The table's rows: the median over rounds, the ratio to the ceiling, the target."""
    rows: list[dict[str, Any]] = []
    for size in (10_000, 1_000):
        for mix in ("granted", "unknown"):
            name = f"{mix}-{size}"
            per_round = [x["batches"][name] for x in rounds]
            ceilings = [min(b["ceiling_s"].values()) for b in per_round]
            ceiling = _median(ceilings)
            best = min(
                per_round[0]["ceiling_s"],
                key=lambda q: _median([b["ceiling_s"][q] for b in per_round]),
            )
            label = f"{size:,} mostly {mix}"
            rows.append(_row(f"ceiling, {label}", ceiling * 1000, "ms", 1.0, note=f"best: {best}"))
            in_process = _median([b["check_many_s"] for b in per_round])
            rows.append(_row(f"check_many, {label}", in_process * 1000, "ms", ceiling / in_process))
            http = _median([b["http_s"] for b in per_round])
            bad = sum(b["http_status"] != 200 for b in per_round)
            target = ">= 0.5x ceiling" if size == 10_000 else None
            rows.append(
                _row(
                    f"HTTP check, {label}", http * 1000, "ms", ceiling / http, target=target,
                    passed=(ceiling / http >= 0.5 and not bad) if target else None,
                    note=f"{bad} non-200" if bad else "",
                )
            )  # fmt: skip
    sends = [x for x in rounds if "send_1" in x]
    if sends:
        people = options.people
        one = _median([x["send_1"]["wall_s"] for x in sends])
        two = _median([x["send_2"]["wall_s"] for x in sends])
        bad_one = sum(x["send_1"]["non_200"] for x in sends)
        bad_two = sum(x["send_2"]["non_200"] for x in sends)
        full = people == 1_000_000
        rows.append(
            _row(
                f"send {people:,}, one client", one, "s", target="< 20 s" if full else None,
                passed=(one < 20 and not bad_one) if full else None,
                note=f"{bad_one} non-200 in all sends"
                + ("" if full else "; target is for 1,000,000"),
            )
        )  # fmt: skip
        rows.append(
            _row(
                f"send {people:,}, two clients (half each)", two, "s",
                target="no errors", passed=bad_two == 0, note=f"{bad_two} non-200 in all sends",
            )
        )  # fmt: skip
    capacity = _median([x["capacity"]["ok_per_s"] for x in rounds])
    cap_errors = sum(x["capacity"]["errors"] for x in rounds)
    rows.append(
        _row(
            f"single checks, capacity ({CONCURRENCY} in flight)", capacity, "req/s",
            target=">= 750 req/s", passed=capacity >= 750,
            note=f"{cap_errors} errors in all rounds",
        )
    )  # fmt: skip
    if "floor" in rounds[0]:  # runs from before it was measured have no floor
        floor = _median([x["floor"]["ok_per_s"] for x in rounds])
        rows.append(
            _row(
                f"floor: GET /healthz, capacity ({CONCURRENCY} in flight)", floor, "req/s",
                note=f"Flask and one SELECT 1; single checks reach {capacity / floor:.2f}x it",
            )
        )  # fmt: skip
        clicks = _median([x["one_click_capacity"]["ok_per_s"] for x in rounds])
        rows.append(
            _row(f"one-click, capacity ({CONCURRENCY} in flight)", clicks, "req/s",
                 note=f"{sum(x['one_click_capacity']['errors'] for x in rounds)} errors")
        )  # fmt: skip
    for key, label, rate, limit in (
        ("single_200", "single checks", SINGLE_RATE, 10.0),
        ("preferences", "GET /preferences/<token>", PAGE_RATE, 50.0),
        ("one_click", "one-click POST /unsubscribe/<token>", PAGE_RATE, 50.0),
    ):
        runs = [x[key] for x in rounds]
        errors = sum(x["errors"] for x in runs)
        p50, p95, p99 = (
            _median([x[p] for x in runs if x[p] is not None] or [float("nan")])
            for p in ("p50_ms", "p95_ms", "p99_ms")
        )
        zero = key != "single_200"
        rows.append(
            _row(
                f"{label} at {rate:.0f}/s, p99", p99, "ms",
                target=f"< {limit:.0f} ms" + (", 0 errors" if zero else ""),
                passed=p99 < limit and (errors == 0 or not zero),
                note=f"p50 {p50:.1f}, p95 {p95:.1f} ms; {errors} errors in all rounds",
            )
        )  # fmt: skip
    rows.append(
        _row(
            "worker RSS, extra for a 10,000 check", rss["extra_mb"], "MB",
            target="< 50 MB", passed=rss["extra_mb"] < 50,
        )
    )  # fmt: skip
    return rows


def _row(
    label: str,
    value: float,
    unit: str,
    ratio: float | None = None,
    *,
    target: str | None = None,
    passed: bool | None = None,
    note: str = "",
) -> dict[str, Any]:
    return {
        "figure": label,
        "value": round(value, 2),
        "unit": unit,
        "ratio_to_ceiling": None if ratio is None else round(ratio, 3),
        "target": target,
        "passed": passed,
        "note": note,
    }


def print_table(name: str, result: dict[str, Any], options: Options) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{name}: {result['people']:,} people, medians of {options.rounds} rounds"
        f" ({options.send_rounds} for the sends)"
    )
    for column in ("figure", "median", "ratio to ceiling", "target", "pass", "note"):
        table.add_column(column, justify="right" if column in ("median", "ratio") else "left")
    for row in result["figures"]:
        passed = {True: "PASS", False: "FAIL", None: ""}[row["passed"]]
        ratio = "" if row["ratio_to_ceiling"] is None else f"{row['ratio_to_ceiling']:.2f}×"
        table.add_row(
            row["figure"], f"{row['value']:,.1f} {row['unit']}", ratio, row["target"] or "",
            passed, row["note"],
        )  # fmt: skip
    Console(width=160).print(table)


def markdown(report: dict[str, Any]) -> str:
    """A recorded run as the Markdown tables of docs/performance.md."""
    machine = report["machine"]
    alone = report["client_alone"]
    lines = [
        f"Run of {report['started_at'][:16]}Z–{report['finished_at'][11:16]}Z:"
        f" `{report['command']}`",
        "",
        f"- machine: {machine['nproc']} × {machine['cpu']}, {machine['memory_gib']} GiB,"
        f" kernel {machine['kernel']}, Python {machine['python']}",
        f"- load average before {machine['load_before']}, after {machine['load_after']};"
        " CPU during the run: "
        + ", ".join(f"{k} {v} %" for k, v in machine["cpu_during_run"].items() if v),
        f"- consentsvc {machine['consentsvc_commit']} ({machine['consentsvc_tree']}),"
        f" bench {machine['bench_commit']}",
        f"- client alone (stub server): {alone['capacity']['ok_per_s']} req/s closed loop;"
        f" at {SINGLE_RATE:.0f}/s p50 {alone['open_loop']['p50_ms']} ms,"
        f" p99 {alone['open_loop']['p99_ms']} ms",
    ]
    options = report["options"]
    for name, result in report["databases"].items():
        lines += [
            "",
            f"**{name}**, {result['people']:,} people, medians of {options['rounds']} rounds"
            f" ({options['send_rounds']} for the sends), rate runs of {options['seconds']:.0f} s:",
            "",
            "| figure | median | ratio to ceiling | target | pass | note |",
            "| --- | ---: | ---: | --- | --- | --- |",
        ]
        for row in result["figures"]:
            ratio = "" if row["ratio_to_ceiling"] is None else f"{row['ratio_to_ceiling']:.2f}×"
            passed = {True: "pass", False: "**fail**", None: ""}[row["passed"]]
            lines.append(
                f"| {row['figure']} | {row['value']:,.1f} {row['unit']} | {ratio} |"
                f" {row['target'] or ''} | {passed} | {row['note']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
