"""Does a person's export slow down as the library's check decisions pile up? Prints the
export time of one person after 0, 100, 300 and 900 consent checks of 10,000 recipients
each (half of them allowed), on the database you name (its tables are dropped and made anew).

    .venv/bin/python bench/export_bench.py                         # SQLite in a temp folder
    .venv/bin/python bench/export_bench.py postgresql://postgres@127.0.0.1:5432/consentsvc_bench
    .venv/bin/python bench/export_bench.py sqlite:///x.sqlite 0,50,100 2000   # steps, recipients
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_app import bench_app, fresh_database
from sqlalchemy import func, insert, select

from consentsvc import ledger
from consentsvc.extensions import db
from consentsvc.ledger import Decision
from consentsvc.models import (
    ApiClient,
    ConsentEvent,
    ConsentState,
    DecisionRecipient,
    Library,
    Subject,
)

STEPS = (0, 100, 300, 900)
RECIPIENTS = 10_000
EXPORTS = 7


def main(url: str, steps: tuple[int, ...], recipients: int) -> None:
    app = bench_app(url)
    key = app.config["SUPPRESSION_KEY"]
    with app.app_context():
        library_id, client_id = fill(recipients)
        print(f"{db.engine.dialect.name}: {recipients:,} people, checks of all of them")
        print("decisions  rows kept  export of one person (median of 7)  their decisions")
        # The person is allowed in every tenth check, like someone who is sometimes mailed.
        person = recipients // 2
        made = 0
        for target in steps:
            library = db.session.get(Library, library_id)
            purpose = ledger.purpose_by_code(library, "newsletter")
            for number in range(made, target):
                allowed = set(range(1 + number % 2, recipients + 1, 2))  # half of the list
                allowed.discard(person)
                if number % 10 == 0:
                    allowed.add(person)
                # Only who was allowed is kept; the addresses do not matter here.
                decisions = [Decision("", True, "granted", i) for i in sorted(allowed)]
                ledger.record_decision(db.session, library, purpose, decisions, client_id=client_id)
                if number % 20 == 19:
                    db.session.commit()
            db.session.commit()
            made = target
            rows = db.session.scalar(select(func.count()).select_from(DecisionRecipient))
            timings = []
            for _ in range(EXPORTS):
                db.session.expunge_all()
                subject = db.session.get(Subject, person)
                started = time.perf_counter()
                data = ledger.export(db.session, subject, suppression_key=key)
                timings.append(time.perf_counter() - started)
            median = sorted(timings)[len(timings) // 2]
            print(
                f"{target:>9,}  {rows:>9,}  {median * 1000:>12.1f} ms"
                f"{'':>23}{len(data['mailings_allowed']):>5}"
            )


def fill(people: int) -> tuple[int, int]:
    fresh_database()
    library = db.session.scalar(select(Library).where(Library.slug == "borne"))
    newsletter = ledger.purpose_by_code(library, "newsletter")
    now = datetime.now(UTC)
    ids = range(1, people + 1)
    db.session.execute(
        insert(Subject),
        [
            {"id": i, "library_id": library.id, "email": f"reader{i}@example.nl",
             "language": "nl", "created_at": now, "last_activity_at": now,
             "recent_confirm_mails": 0}
            for i in ids
        ],
    )  # fmt: skip
    db.session.execute(
        insert(ConsentEvent),
        [
            {"id": i, "subject_id": i, "purpose_id": newsletter.id, "occurred_at": now,
             "channel": "import", "action": "granted"}
            for i in ids
        ],
    )  # fmt: skip
    db.session.execute(
        insert(ConsentState),
        [
            {"subject_id": i, "purpose_id": newsletter.id, "status": "granted",
             "changed_at": now, "last_event_id": i}
            for i in ids
        ],
    )  # fmt: skip
    client = ApiClient(
        library_id=library.id, name="bench", key_hash="0" * 64, key_prefix="csk_bench",
        purposes=["newsletter"],
    )  # fmt: skip
    db.session.add(client)
    db.session.commit()
    return library.id, client.id


if __name__ == "__main__":
    args = sys.argv[1:]
    steps = tuple(int(n) for n in args[1].split(",")) if len(args) > 1 else STEPS
    recipients = int(args[2]) if len(args) > 2 else RECIPIENTS
    if args:
        main(args[0], steps, recipients)
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(f"sqlite:///{Path(folder) / 'bench.sqlite'}", steps, recipients)
