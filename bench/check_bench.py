"""How fast is the consent check? Prints recipients per second for 10,000-recipient batches
against 100,000 people, on the database you name (its tables are dropped and made anew).

    .venv/bin/python bench/check_bench.py                          # SQLite in a temp folder
    .venv/bin/python bench/check_bench.py postgresql://postgres@127.0.0.1:5432/consentsvc_bench
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_app import bench_app, fresh_database
from sqlalchemy import insert, select

from consentsvc import clients, ledger
from consentsvc.extensions import db
from consentsvc.models import ConsentEvent, ConsentState, Library, Subject, Suppression

PEOPLE = 100_000
BATCH = 10_000
ROUNDS = 5


def main(url: str) -> None:
    app = bench_app(url)
    with app.app_context():
        started = time.perf_counter()
        fill(app)
        took = time.perf_counter() - started
        print(f"{db.engine.dialect.name}: {PEOPLE:,} people loaded in {took:.1f} s")
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        _client, key = clients.create(db.session, library, "bench", ["newsletter"])
        db.session.commit()

    rng = random.Random(7)
    batches = [
        # Mostly known people, some unknown, as a real list would be.
        [f"reader{rng.randrange(int(PEOPLE * 1.1))}@example.nl" for _ in range(BATCH)]
        for _ in range(ROUNDS)
    ]
    with app.app_context():
        library = db.session.scalar(select(Library).where(Library.slug == "borne"))
        timings = []
        for batch in batches:
            started = time.perf_counter()
            decisions = ledger.check_many(
                db.session, library, "newsletter", batch,
                suppression_key=app.config["SUPPRESSION_KEY"],
            )  # fmt: skip
            timings.append(time.perf_counter() - started)
            db.session.rollback()
        report("ledger.check_many (SQL and normalising)", timings)
        allowed = sum(d.allowed for d in decisions)

    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    timings = []
    for batch in batches:
        started = time.perf_counter()
        response = client.post(
            "/api/v1/consent/check",
            json={"purpose": "newsletter", "recipients": batch},
            headers=headers,
        )
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200, response.data[:200]
    report("POST /api/v1/consent/check (whole request, tokens, JSON)", timings)
    print(f"  ({allowed:,} of the last {BATCH:,} allowed, each with two signed links)")


def fill(app) -> None:
    fresh_database()
    library = db.session.scalar(select(Library).where(Library.slug == "borne"))
    newsletter = ledger.purpose_by_code(library, "newsletter")
    now = datetime.now(UTC)
    rng = random.Random(1)
    step = 10_000
    for start in range(0, PEOPLE, step):
        ids = range(start + 1, start + step + 1)
        db.session.execute(
            insert(Subject),
            [
                {"id": i, "library_id": library.id, "email": f"reader{i}@example.nl",
                 "language": "nl", "created_at": now, "last_activity_at": now,
                 "recent_confirm_mails": 0}
                for i in ids
            ],
        )  # fmt: skip
        chosen = [(i, rng.random()) for i in ids]
        events = [
            {"id": i, "subject_id": i, "purpose_id": newsletter.id, "occurred_at": now,
             "channel": "import", "action": "granted" if r < 0.6 else "withdrawn"}
            for i, r in chosen if r < 0.7
        ]  # fmt: skip
        if events:
            db.session.execute(insert(ConsentEvent), events)
            db.session.execute(
                insert(ConsentState),
                [
                    {"subject_id": e["subject_id"], "purpose_id": newsletter.id,
                     "status": e["action"], "changed_at": now, "last_event_id": e["id"]}
                    for e in events
                ],
            )  # fmt: skip
        suppressed = [f"reader{i}@example.nl" for i, r in chosen if r > 0.99]
        key = app.config["SUPPRESSION_KEY"]
        if suppressed:
            db.session.execute(
                insert(Suppression),
                [
                    {"library_id": library.id, "reason": "hard_bounce", "created_at": now,
                     "email_hmac": ledger.email_hmac(key, email)}
                    for email in suppressed
                ],
            )  # fmt: skip
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()


def report(label: str, timings: list[float]) -> None:
    best, median = min(timings), sorted(timings)[len(timings) // 2]
    print(f"{label}:")
    print(
        f"  median {median * 1000:.0f} ms per {BATCH:,}  ->  {BATCH / median:,.0f} recipients/s"
        f" (best {BATCH / best:,.0f}/s)"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(f"sqlite:///{Path(folder) / 'bench.sqlite'}")
