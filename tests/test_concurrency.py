"""Requests at once: many members, double clicks, several processes; nothing lost or doubled."""

import itertools
import subprocess
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select

from consentsvc import create_app, ledger, tokens
from consentsvc.cli import deliver_once
from consentsvc.extensions import db
from consentsvc.models import ConsentEvent, ConsentState, Library, OutboxMessage, Subject

from . import servers
from .conftest import TEST_CONFIG, csrf_token
from .test_admin import log_in, person
from .test_faults import BIN, service_env


def test_simultaneous_signups_for_one_new_address(app):
    barrier = threading.Barrier(4)
    failures = []

    def sign_up(code):
        client = app.test_client(use_cookies=False)
        barrier.wait()
        response = client.post(
            "/borne/signup",
            data={"email": "same@example.nl", "purpose": code},
            headers={"Origin": "http://127.0.0.1:8000"},
        )
        if response.status_code != 303:  # to the "check your mail" page
            failures.append(response.status_code)

    threads = [
        threading.Thread(target=sign_up, args=(code,))
        for code in ("newsletter", "acquisitions", "newsletter", "acquisitions")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    # The requests only recorded the signups; workers side by side carry them out.
    _workers_together(app, 4)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Subject)) == 1
        assert db.session.scalar(select(func.count()).select_from(ConsentEvent)) == 4
        assert ledger.verify(db.session) == []


def _workers_together(app, count):
    """Several outbox workers at once, each claiming one message at a time, until none is due."""
    barrier = threading.Barrier(count)
    errors = []

    def work():
        barrier.wait()
        with app.app_context():
            try:
                while deliver_once(limit=1).handled:
                    pass
            except Exception as exc:  # reported by the assertion below
                errors.append(repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    with app.app_context():
        waiting = db.session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.delivered_at.is_(None), OutboxMessage.dead_at.is_(None))
        )
        assert waiting == 0


# -- many members at once ---------------------------------------------------------------------

HOT_SUBJECTS = 5
THREADS = 50


def _pending_people(app, count):
    """People who signed up for newsletter and acquisitions and have not confirmed yet,
    with the links their mails would carry."""
    people = []
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        for number in range(count):
            result = ledger.signup(
                db.session, lib, f"hot{number}@example.nl", ["newsletter", "acquisitions"],
                language="nl", channel=ledger.Channel.WEB_FORM,
            )  # fmt: skip
            db.session.commit()
            subject_id = result.subject.id
            people.append(
                {
                    "id": subject_id,
                    "confirm": tokens.make_confirm(subject_id, result.request_ids),
                    "preferences": tokens.make_preferences(subject_id),
                }
            )
    return people


def _run_together(count, work):
    """Start `count` threads on `work(index)` at the same moment; return what went wrong."""
    barrier = threading.Barrier(count)
    problems = []

    def run(index):
        try:
            barrier.wait(timeout=30)
            work(index)
        except Exception as exc:  # a crash in a thread must fail the test, not vanish
            problems.append(f"thread {index}: {exc!r}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    return problems


def _events_by_pair():
    rows = db.session.execute(
        select(ConsentEvent.subject_id, ConsentEvent.purpose_id, ConsentEvent.action).order_by(
            ConsentEvent.id
        )
    )
    pairs = defaultdict(list)
    for subject_id, purpose_id, action in rows:
        pairs[(subject_id, purpose_id)].append(action)
    return pairs


def test_fifty_members_at_once_lose_nothing(app):
    """50 threads confirm, switch on and off, object and sign up, on five shared people and
    on fifteen new ones. Every answer is a normal page; the ledger stays consistent."""
    people = _pending_people(app, HOT_SUBJECTS)
    answers = []
    choices = [("newsletter", "on"), ("newsletter", "off"), ("acquisitions", "off"),
               ("acquisitions", "on"), ("direct_marketing", "never")]  # fmt: skip

    def work(index):
        client = app.test_client(use_cookies=False)
        member = people[index % HOT_SUBJECTS]
        role = index % 10
        if role < 3:
            # The same confirmation link, clicked from several mail programs at once.
            response = client.post(f"/confirm/{member['confirm']}")
            answers.append(("confirm", member["id"], response.status_code))
            assert response.status_code == 200
        elif role < 7:
            for step in range(3):
                code, choice = choices[(index + step) % len(choices)]
                response = client.post(
                    f"/preferences/{member['preferences']}",
                    data={"purpose": code, "choice": choice},
                )
                answers.append((choice, member["id"], response.status_code))
                assert response.status_code == 303, response.status_code
        else:
            # New people; two addresses are signed up for by two threads at once.
            email = f"new{index % 15 if role == 9 else index}@example.nl"
            response = client.post(
                "/borne/signup",
                data={"email": email, "purpose": ["newsletter", "acquisitions"]},
                headers={"Origin": "http://127.0.0.1:8000"},
            )
            answers.append(("signup", email, response.status_code))
            assert response.status_code == 303  # to the "check your mail" page

    problems = _run_together(THREADS, work)
    assert problems == []
    assert len(answers) == 15 + 20 * 3 + 15
    _workers_together(app, 4)  # they carry out the signups the requests recorded

    with app.app_context():
        # State equals the fold of the events, for every person and purpose.
        assert ledger.verify(db.session) == []
        pairs = _events_by_pair()
        states = db.session.scalar(select(func.count()).select_from(ConsentState))
        assert states == len(pairs)
        for (subject_id, purpose_id), actions in pairs.items():
            # A lost update shows as the same change twice in a row: two requests that
            # both read "off" and both wrote "on". The ledger's lock makes the second see
            # the first and record nothing.
            # (A second signup while still pending is a new request, so "requested" may
            # repeat.)
            repeated = [a for a, b in itertools.pairwise(actions) if a == b and a != "requested"]
            assert repeated == [], (subject_id, purpose_id, actions)
        for member in people:
            granted_by_link = db.session.scalar(
                select(func.count())
                .select_from(ConsentEvent)
                .where(
                    ConsentEvent.subject_id == member["id"],
                    ConsentEvent.request_id.is_not(None),
                )
            )
            # Three simultaneous confirms of one link for two purposes: two grants at most,
            # never one per click. (A preference change may have come first.)
            assert granted_by_link <= 2
        new_people = db.session.scalars(
            select(Subject.email).where(Subject.email.like("new%"))
        ).all()
        assert sorted(new_people) == sorted(
            {f"new{i % 15 if i % 10 == 9 else i}@example.nl" for i in range(50) if i % 10 >= 7}
        )


# -- the same form sent twice -------------------------------------------------------------------


def _event_count(app, subject_id, action):
    with app.app_context():
        return db.session.scalar(
            select(func.count())
            .select_from(ConsentEvent)
            .where(ConsentEvent.subject_id == subject_id, ConsentEvent.action == action)
        )


def _twice_at_once(send):
    """Send the same form from two threads at the same moment, as a double click does."""
    results = [None, None]

    def work(index):
        results[index] = send(index)

    assert _run_together(2, work) == []
    return results


def test_double_confirm_records_one_grant(app):
    member = _pending_people(app, 1)[0]
    url = f"/confirm/{member['confirm']}"
    first, second = _twice_at_once(lambda _i: app.test_client(use_cookies=False).post(url))
    pages = sorted([first.get_data(as_text=True), second.get_data(as_text=True)], key=len)
    assert {first.status_code, second.status_code} == {200}
    # One click confirmed; the other is told there is nothing left, in the member's Dutch.
    assert sum("Er is niets meer te bevestigen" in page for page in pages) == 1, pages
    assert _event_count(app, member["id"], "granted") == 2  # newsletter and acquisitions
    third = app.test_client().post(url)
    assert "Er is niets meer te bevestigen" in third.get_data(as_text=True)
    assert _event_count(app, member["id"], "granted") == 2


def test_double_unsubscribe_records_one_withdrawal(app):
    member = _pending_people(app, 1)[0]
    app.test_client().post(f"/confirm/{member['confirm']}")
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        newsletter = ledger.purpose_by_code(lib, "newsletter")
        url = f"/unsubscribe/{tokens.make_unsubscribe(member['id'], newsletter.id)}"
    one_click = {"List-Unsubscribe": "One-Click"}
    first, second = _twice_at_once(
        lambda _i: app.test_client(use_cookies=False).post(url, data=one_click)
    )
    assert (first.status_code, second.status_code) == (200, 200)
    for page in (first.get_data(as_text=True), second.get_data(as_text=True)):
        # Both clicks get the same calm answer: the mail has stopped.
        assert "Je bent afgemeld" in page and "Nieuwsbrief" in page
    assert _event_count(app, member["id"], "withdrawn") == 1
    app.test_client().post(url)
    assert _event_count(app, member["id"], "withdrawn") == 1


def test_double_staff_objection_records_one_event(app):
    desk = log_in(app, "desk")
    subject_id = person(app, "bezwaar@example.nl")
    page = f"/admin/subjects/{subject_id}"
    form = {
        "purpose": "direct_marketing",
        "objection": "yes",
        "note": "Belde op, wil geen aanbiedingen",
        "csrf_token": csrf_token(desk, page),
    }
    # The second tab of the same logged-in desk worker, with the same session.
    other = app.test_client()
    other.set_cookie("session", desk.get_cookie("session").value)
    first, second = _twice_at_once(lambda i: (desk, other)[i].post(f"{page}/stop", data=form))
    assert (first.status_code, second.status_code) == (303, 303)
    assert _event_count(app, subject_id, "objected") == 1
    shown = desk.get(first.headers["Location"]).get_data(as_text=True)
    assert "bezwaar@example.nl" in shown
    # The timeline shows the objection once, not twice.
    timeline = shown[shown.index('id="timeline"') :]
    assert timeline.count("Bezwaar gemaakt") == 1


# -- several processes writing one SQLite file ----------------------------------------------------


def test_gunicorn_workers_share_one_sqlite_file(tmp_path):
    """Four gunicorn workers write to one SQLite file at once: no "database is locked",
    no 5xx, and the ledger stays consistent."""
    database = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    env = service_env(database, tmp_path)
    for command in (["db", "upgrade"], ["demo"]):
        done = subprocess.run(  # noqa: S603 - the project's own command
            [BIN / "consentsvc", *command], env=env, capture_output=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    members = []
    app = create_app({**TEST_CONFIG, "DATABASE_URL": database, "MAIL_DIR": str(tmp_path)})
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        for number in range(8):
            result = ledger.signup(
                db.session, lib, f"lid{number}@example.nl", ["newsletter", "acquisitions"],
                language="nl", channel=ledger.Channel.WEB_FORM,
            )  # fmt: skip
            ledger.confirm(db.session, result.subject, result.request_ids)
            db.session.commit()
            members.append(tokens.make_preferences(result.subject.id))
        db.session.remove()
        db.engine.dispose()

    log_path = tmp_path / "gunicorn.log"
    with servers.gunicorn("-w", "4", env=env, log=log_path) as served:
        base = served.url

        def send(number):
            with httpx.Client(base_url=base, timeout=60) as client:
                if number % 3 == 0:
                    response = client.post(
                        "/borne/signup",
                        data={"email": f"drukte{number}@example.nl", "purpose": "newsletter"},
                        headers={"Origin": "http://127.0.0.1:8000"},
                    )
                else:
                    code = ("newsletter", "acquisitions")[number % 2]
                    choice = ("on", "off")[(number // 2) % 2]
                    response = client.post(
                        f"/preferences/{members[number % len(members)]}",
                        data={"purpose": code, "choice": choice},
                    )
                return response.status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(send, range(120)))

    log_text = log_path.read_text()
    assert "database is locked" not in log_text
    # A lock that outlasted the busy timeout would be answered 503 and logged as this.
    assert "database unavailable" not in log_text
    assert "Traceback" not in log_text
    # Signups and changes alike answer with a redirect to the page that shows the result.
    assert statuses == [303] * 120, statuses
    _workers_together(app, 2)
    with app.app_context():
        assert ledger.verify(db.session) == []
        signed_up = db.session.scalar(
            select(func.count()).select_from(Subject).where(Subject.email.like("drukte%"))
        )
        assert signed_up == 40
        db.session.remove()
        db.engine.dispose()


# -- a consent check and SQLite's one write lock ------------------------------------------------


def _jan_on_a_sqlite_file(app_factory, path):
    """An app on its own SQLite file (the lock is SQLite's), with jan granted the newsletter
    and an API key; the engine, jan's id and the newsletter's id, and the key."""
    from consentsvc import clients

    app = app_factory(DATABASE_URL=f"sqlite:///{path}")
    with app.app_context():
        lib = db.session.scalar(select(Library).where(Library.slug == "borne"))
        result = ledger.signup(db.session, lib, "jan@example.nl", ["newsletter"], language="nl",
                               channel=ledger.Channel.WEB_FORM)  # fmt: skip
        ledger.confirm(db.session, result.subject, result.request_ids)
        _client, key = clients.create(db.session, lib, "Laposta", ["newsletter"])
        db.session.commit()
        ids = (result.subject.id, ledger.purpose_by_code(lib, "newsletter").id)
        return app, db.engine, ids, key


def _until_the_write(engine, path, send):
    """Run `send` while another connection holds SQLite's write lock; the statements it ran
    before it started waiting, and (after the lock is let go) all of them and its answer."""
    import sqlite3

    from sqlalchemy import event

    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: seen.append(" ".join(a[2].split())))
    answer = {}
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing, holding the lock
    try:
        worker = threading.Thread(target=lambda: answer.update(response=send()))
        worker.start()
        for _ in range(200):
            if "BEGIN IMMEDIATE" in seen:
                break
            worker.join(0.025)
        before = list(seen)
        assert before and before[-1] == "BEGIN IMMEDIATE" and worker.is_alive(), seen
    finally:
        other.execute("ROLLBACK")
        other.close()
    worker.join(15)
    return before, seen, answer["response"]


def test_a_consent_check_reads_while_another_writer_holds_the_sqlite_lock(app_factory, tmp_path):
    """The check reads in a plain transaction and takes the write lock only to keep its
    decision: with another writer holding the lock, it gets as far as that write and waits
    there, instead of waiting at its first query (which made two senders queue and time
    out). Always on a SQLite file: the lock is SQLite's."""
    from consentsvc.models import ConsentDecision

    path = tmp_path / "lock.sqlite"
    app, engine, _ids, key = _jan_on_a_sqlite_file(app_factory, path)
    before, _seen, response = _until_the_write(
        engine,
        path,
        lambda: app.test_client().post(
            "/api/v1/consent/check",
            json={"purpose": "newsletter", "recipients": ["jan@example.nl"]},
            headers={"Authorization": f"Bearer {key}"},
        ),
    )
    # It read (the key) in a deferred transaction and now waits at the write only.
    assert before[0] == "BEGIN" and "FROM api_client" in before[1]
    assert response.status_code == 200
    [result] = response.json["results"]
    assert (result["allowed"], result["reason"]) == (True, "granted")
    with app.app_context():
        kept = db.session.get(ConsentDecision, response.json["decision_id"])
        assert kept is not None and kept.reasons == {"granted": 1}


def test_a_one_click_reads_before_the_sqlite_lock_and_renders_from_what_it_loaded(
    app_factory, tmp_path
):
    """A mailbox provider's one-clicks come in bursts: each reads the person, library and
    texts before it waits for the write lock, holds the lock only for the withdrawal, and
    renders its page without loading the person again (docs/performance.md)."""
    path = tmp_path / "lock.sqlite"
    app, engine, (jan, newsletter), _key = _jan_on_a_sqlite_file(app_factory, path)
    with app.test_request_context():
        token = tokens.make_unsubscribe(jan, newsletter)
    before, seen, response = _until_the_write(
        engine,
        path,
        lambda: app.test_client().post(
            f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}
        ),
    )
    assert before[0] == "BEGIN"
    assert any("FROM subject" in s for s in before) and any("FROM library" in s for s in before)
    assert response.status_code == 200 and "Je bent afgemeld" in response.text
    written = max(i for i, s in enumerate(seen) if s.startswith("INSERT INTO consent_event"))
    after = seen[written + 1 :]
    assert not any("FROM subject" in s or "FROM library" in s for s in after), after
    with app.app_context():
        state = db.session.get(ConsentState, (jan, newsletter))
        assert state is not None and state.status == "withdrawn"
