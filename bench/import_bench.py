"""How fast does a subscriber list import? Generates a Mailchimp audience export of
100,000 people (a few already known here, some unsubscribed), reads it and imports it for
one library and purpose, on SQLite (a temporary file) and on PostgreSQL (a database of its
own, made and dropped again). Prints rows per second and seconds, reading and importing
apart, with and without a webhook endpoint that hears of every grant.

    .venv/bin/python bench/import_bench.py [-n 100000] [--database sqlite|postgresql]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psycopg
from bench_app import SUPPRESSION_KEY, bench_app, fresh_database
from sqlalchemy import select

from consentsvc import ledger, outbox, subscriber_file
from consentsvc.extensions import db
from consentsvc.models import Library, WebhookEndpoint

BENCH_DB = "test_import_bench"
KEY = SUPPRESSION_KEY


def export(people: int) -> bytes:
    """A subscribed-members file as Mailchimp writes it (UTC times, CRLF)."""
    header = (
        "Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,"
        "CONFIRM_IP,LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,LAST_CHANGED,LEID,"
        "EUID,NOTES,TAGS"
    )
    rows = [header] + [
        f"reader{i}@example.nl,Lezer,{i},2,2020-01-{1 + i % 28:02d} 10:00:00,192.0.2.{i % 250},"
        f"2020-01-{1 + i % 28:02d} 10:05:00,192.0.2.{i % 250},,,,,,NL,,2023-05-06 10:00:00,"
        f"{100000000 + i},e{i:09x},,"
        for i in range(people)
    ]
    return ("\r\n".join(rows) + "\r\n").encode()


def run(url: str, people: int, with_webhook: bool) -> None:
    app = bench_app(url)
    data = export(people)
    with app.app_context():
        fresh_database()
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        if with_webhook:
            db.session.add(WebhookEndpoint(
                library_id=library.id, url="https://hooks.example.nl/consent",
                events=["consent.granted"], secret=outbox.new_secret(),
            ))  # fmt: skip
        db.session.commit()
        started = time.perf_counter()
        listed = subscriber_file.read(data, "members_export.csv")
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        record = ledger.begin_import(
            db.session, library, "newsletter", listed.source, actor="bench"
        )
        ledger.run_import(
            db.session, record, listed.people, suppression_key=KEY, actor="bench",
            after_batch=lambda rows: db.session.commit(),
        )  # fmt: skip
        db.session.commit()
        import_s = time.perf_counter() - started
        assert ledger.verify(db.session) == [], "the ledger does not fold"
        dialect = db.engine.dialect.name
        db.session.remove()
        db.engine.dispose()
    total = read_s + import_s
    hook = "with a webhook" if with_webhook else "no webhook    "
    print(
        f"{dialect:<10} {hook}  {people:,} rows: read {read_s:5.1f} s, import {import_s:5.1f} s,"
        f" {people / total:8,.0f} rows/s overall"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=100_000, help="rows in the list")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), action="append")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    databases = args.database or ["sqlite", "postgresql"]
    if "sqlite" in databases:
        with tempfile.TemporaryDirectory() as folder:
            for hook in (False, True):
                run(f"sqlite:///{Path(folder) / f'bench{hook}.sqlite'}", args.n, hook)
    if "postgresql" in databases:
        admin = psycopg.connect(args.postgres_url, autocommit=True)
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")
        admin.execute(f"CREATE DATABASE {BENCH_DB}")
        try:
            base = args.postgres_url.rsplit("/", 1)[0]
            for hook in (False, True):
                run(f"{base}/{BENCH_DB}", args.n, hook)
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
            admin.close()


if __name__ == "__main__":
    main()
