"""How long does retention take for a large library? Fills one library with N people (half of
them stopped everything two years ago, so due for contact-data erasure; the rest subscribed
now), then prints the seconds of the dry run, the real run, and the dry run after it, on the
database you name (its tables are dropped and made anew).

    .venv/bin/python bench/retention_bench.py                      # SQLite in a temp folder
    .venv/bin/python bench/retention_bench.py postgresql://postgres@127.0.0.1:5432/consentsvc_bench
    .venv/bin/python bench/retention_bench.py sqlite:///x.sqlite 50000   # people
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_app import bench_app, fresh_database
from sqlalchemy import insert, select, text

from consentsvc import retention
from consentsvc.extensions import db
from consentsvc.models import ConsentEvent, ConsentState, Library, Subject

PEOPLE = 20_000


def fill(people: int) -> int:
    fresh_database()
    library = db.session.scalar(select(Library).where(Library.slug == "zoetermeer"))
    purpose = next(p for p in library.purposes if p.code == "newsletter")
    now = datetime.now(UTC)
    old = now - timedelta(days=730)
    subjects, events, states = [], [], []
    for number in range(1, people + 1):
        stopped = number % 2 == 0
        at = old if stopped else now
        subjects.append(
            {"id": number, "library_id": library.id, "email": f"p{number}@example.nl",
             "language": "nl", "created_at": at, "last_activity_at": at,
             "recent_confirm_mails": 0}
        )  # fmt: skip
        events.append(
            {"id": 2 * number - 1, "subject_id": number, "purpose_id": purpose.id,
             "action": "granted", "occurred_at": at, "channel": "web_form"}
        )  # fmt: skip
        last = 2 * number - 1
        if stopped:
            last = 2 * number
            events.append(
                {"id": last, "subject_id": number, "purpose_id": purpose.id,
                 "action": "withdrawn", "occurred_at": at, "channel": "email_link"}
            )  # fmt: skip
        states.append(
            {"subject_id": number, "purpose_id": purpose.id,
             "status": "withdrawn" if stopped else "granted", "changed_at": at,
             "last_event_id": last}
        )  # fmt: skip
    for table, rows in ((Subject, subjects), (ConsentEvent, events), (ConsentState, states)):
        for start in range(0, len(rows), 5000):
            db.session.execute(insert(table), rows[start : start + 5000])
    if db.engine.dialect.name == "postgresql":
        # The ids were given, so the sequences must be told where they are.
        for statement in (
            "SELECT setval(pg_get_serial_sequence('subject', 'id'), MAX(id)) FROM subject",
            "SELECT setval(pg_get_serial_sequence('consent_event', 'id'), MAX(id))"
            " FROM consent_event",
        ):
            db.session.execute(text(statement))
    db.session.commit()
    return library.id


def dry_run(library: Library, label: str) -> None:
    started = time.perf_counter()
    due = retention.due(db.session, library)
    db.session.rollback()
    print(f"  {label} {time.perf_counter() - started:6.1f} s  ({sum(due.values()):,} due)")


def main(url: str, people: int) -> None:
    app = bench_app(url)
    with app.app_context():
        library_id = fill(people)
        library = db.session.get(Library, library_id)
        print(f"{db.engine.dialect.name}: {people:,} people, {people // 2:,} of them due")
        dry_run(library, "dry run     ")
        started = time.perf_counter()
        report = retention.run_library(
            db.session, library, suppression_key=app.config["SUPPRESSION_KEY"]
        )
        seconds = time.perf_counter() - started
        erased = report.counts["contact_after_membership"]
        print(f"  real run     {seconds:6.1f} s  ({erased:,} erased, {erased / seconds:,.0f}/s)")
        dry_run(library, "dry run then")
        db.session.remove()
        db.engine.dispose()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        target = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{Path(folder) / 'b.sqlite'}"
        main(target, int(sys.argv[2]) if len(sys.argv) > 2 else PEOPLE)
