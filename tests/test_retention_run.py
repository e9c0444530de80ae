"""The retention job as it runs: two runs at once erase each person once, and the worker
runs it by itself once a day, however many workers there are."""

import threading
from datetime import UTC, date, datetime, timedelta

import time_machine
from sqlalchemy import func, select

from consentsvc import ledger, retention
from consentsvc.extensions import db
from consentsvc.ledger import retention as rules
from consentsvc.models import ConsentEvent, Library, RetentionRun, Subject, backdated

KEY = "test-suppression-key"
PEOPLE = 60


def borne():
    return db.session.scalar(select(Library).where(Library.slug == "borne"))


def stopped_people(app, count=PEOPLE):
    """People who withdrew everything 8 months ago: due for contact-data erasure."""
    with app.app_context(), backdated(timedelta(days=240)):
        for number in range(count):
            result = ledger.signup(
                db.session, borne(), f"weg{number}@example.nl", ["newsletter"],
                language="nl", channel=ledger.Channel.WEB_FORM,
            )  # fmt: skip
            ledger.confirm(db.session, result.subject, result.request_ids)
            ledger.withdraw(db.session, result.subject, "newsletter", channel="email_link")
        db.session.commit()


def erasures_per_person(app):
    with app.app_context():
        rows = db.session.execute(
            select(ConsentEvent.subject_id, func.count())
            .where(ConsentEvent.action == "erased", ConsentEvent.actor == "retention")
            .group_by(ConsentEvent.subject_id)
        ).all()
        erased = db.session.scalar(select(func.count()).where(Subject.erased_at.is_not(None)))
        return dict(rows), erased


def side_by_side(app, work, count=2):
    """Run `work()` in `count` threads at once, each in its own app context (own connection)."""
    barrier = threading.Barrier(count)
    results, errors = [], []

    def one():
        with app.app_context():
            barrier.wait()
            try:
                results.append(work())
            except Exception as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


def test_two_runs_at_once_erase_each_person_once(app):
    stopped_people(app)

    def run_borne():
        return retention.run_library(db.session, borne(), suppression_key=KEY, batch=7)

    reports = side_by_side(app, run_borne)
    per_person, erased = erasures_per_person(app)
    assert erased == PEOPLE
    assert sorted(set(per_person.values())) == [1]  # one purpose, one erased event each
    assert sum(r.counts.get("contact_after_membership", 0) for r in reports) == PEOPLE
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            # The advisory lock let one run do the library; the other skipped it.
            assert sorted(r.busy for r in reports) == [False, True]
        assert ledger.verify(db.session) == []


def test_two_hosts_erasing_the_same_batch_erase_each_person_once(app):
    """Without the library lock (or past it), each person is looked at again under their
    own lock, so a batch two runs both found is still erased once."""
    stopped_people(app)
    found = threading.Barrier(2)

    def erase_batch():
        policy = rules.RetentionPolicy.of(borne(), datetime.now(UTC))
        due, _after = rules.people_batch(db.session, borne(), policy, limit=PEOPLE)
        db.session.commit()  # SQLite: let the other host look too
        found.wait()
        assert len(due) == PEOPLE
        done = rules.erase_people(db.session, due, suppression_key=KEY)
        db.session.commit()
        return done.get("contact_after_membership", 0)

    results = side_by_side(app, erase_batch)
    per_person, erased = erasures_per_person(app)
    assert erased == PEOPLE and sorted(set(per_person.values())) == [1]
    assert sum(results) == PEOPLE


def test_the_worker_runs_retention_once_a_day_at_the_set_time(app_factory):
    app = app_factory(RETENTION_TIME="03:30")
    runner = app.test_cli_runner()

    def daily_runs():
        with app.app_context():
            return db.session.execute(
                select(RetentionRun.library_id, RetentionRun.scheduled_for).order_by(
                    RetentionRun.id
                )
            ).all()

    # 03:29 in Amsterdam (summer time, UTC+2).
    with time_machine.travel(datetime(2026, 6, 10, 1, 29, tzinfo=UTC), tick=False) as clock:
        with app.app_context():
            with backdated(timedelta(days=31)):
                ledger.signup(
                    db.session, borne(), "nooit@example.nl", ["newsletter"], language="nl",
                    channel=ledger.Channel.WEB_FORM,
                )  # fmt: skip
            db.session.commit()
        assert runner.invoke(args=["worker", "--once"]).exit_code == 0
        assert daily_runs() == []
        clock.move_to(datetime(2026, 6, 10, 1, 30, tzinfo=UTC))
        first = runner.invoke(args=["worker", "--once"])
        assert "retention borne: pending_signup 1" in first.output
        assert [day for _library, day in daily_runs()] == [date(2026, 6, 10)] * 2
        with app.app_context():
            assert ledger.find_subject(db.session, borne(), "nooit@example.nl") is None
        # Later that day, also from a fresh worker process that remembers nothing itself.
        clock.move_to(datetime(2026, 6, 10, 20, 0, tzinfo=UTC))
        app.config.pop("_RETENTION_DONE_ON")
        again = runner.invoke(args=["worker", "--once"])
        assert "retention" not in again.output
        assert len(daily_runs()) == 2
        # The next day it runs again (winter or summer, the time is Amsterdam's).
        clock.move_to(datetime(2026, 6, 11, 1, 31, tzinfo=UTC))
        runner.invoke(args=["worker", "--once"])
        days = [day for _library, day in daily_runs()]
        assert days == [date(2026, 6, 10)] * 2 + [date(2026, 6, 11)] * 2


def test_the_worker_leaves_retention_to_cron_when_switched_off(app_factory):
    app = app_factory(RETENTION_TIME="off")
    with time_machine.travel(datetime(2026, 6, 10, 12, 0, tzinfo=UTC), tick=False):
        assert app.test_cli_runner().invoke(args=["worker", "--once"]).exit_code == 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RetentionRun)) == 0
